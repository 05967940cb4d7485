#!/usr/bin/env bash
# Usage: utils/copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] [--validate-opts O] <src-data-dir> <dest-data-dir>
# Copies a data dir, renaming utterance and speaker ids (in utt2uniq too, when the
# source has one). Recording ids (with segments) are kept. The
# copy is then validated (--no-feats/--no-text added where the source has no
# feats.scp/text); a copy that does not validate is an error.
#   --validate-opts  validate_data_dir.sh options for that check, e.g. "--no-wav"
# e.g. utils/copy_data_dir.sh --utt-prefix rev- --spk-prefix rev- data/train data/train_rev
set -euo pipefail
utt_prefix=
utt_suffix=
spk_prefix=
spk_suffix=
validate_opts=
. parse_options.sh
if [ $# -ne 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.copy_data_dir --utt-prefix="$utt_prefix" --utt-suffix="$utt_suffix" \
  --spk-prefix="$spk_prefix" --spk-suffix="$spk_suffix" --validate-opts="$validate_opts" "$1" "$2"

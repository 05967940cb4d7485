#!/usr/bin/env bash
# Usage: utils/copy_data_dir.sh [--utt-prefix P] [--utt-suffix S] [--spk-prefix P] [--spk-suffix S] <src-data-dir> <dest-data-dir>
# Copies a data dir, renaming utterance and speaker ids; a renamed copy gets
# utt2uniq (new id -> original id). Recording ids (with segments) are kept.
# e.g. utils/copy_data_dir.sh --utt-prefix rev- --spk-prefix rev- data/train data/train_rev
set -euo pipefail
utt_prefix=
utt_suffix=
spk_prefix=
spk_suffix=
. parse_options.sh
if [ $# -ne 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.copy_data_dir --utt-prefix="$utt_prefix" --utt-suffix="$utt_suffix" \
  --spk-prefix="$spk_prefix" --spk-suffix="$spk_suffix" "$1" "$2"

#!/usr/bin/env bash
# Usage: utils/combine_data.sh [--extra-files "f1 f2"] [--skip-fix true] <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
# Kaldi's combine_data.sh: the union of several data dirs, then fix_data_dir.sh on
# it. A file is combined when every source has it (otherwise left out with a
# warning); utt2uniq is made when any source has one, and segments (from utt2dur)
# for sources without when any has them. A key repeated across sources is kept
# once, from the line that sorts first, with a warning.
#   --extra-files  more files to combine (utt2*/spk2*/reco2* files are combined anyway)
#   --skip-fix     true: do not run fix_data_dir.sh on the result
# e.g. utils/combine_data.sh data/train_aug data/train_reverb data/train_noise
set -euo pipefail
extra_files=
skip_fix=false
. parse_options.sh
if [ $# -lt 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.combine_data --extra-files="$extra_files" --skip-fix="$skip_fix" "$@"

#!/usr/bin/env bash
# Usage: utils/combine_data.sh <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
# The union of several data dirs. A file is combined when every source has it
# (otherwise left out with a warning); sources without segments get
# whole-recording segments when others have them. Utterance ids must be unique
# across sources (make them so with copy_data_dir.sh --utt-prefix).
# e.g. utils/combine_data.sh data/train_aug data/train_reverb data/train_noise
set -euo pipefail
. parse_options.sh
if [ $# -lt 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.combine_data "$@"

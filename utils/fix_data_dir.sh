#!/usr/bin/env bash
# Usage: utils/fix_data_dir.sh <data-dir>
# Reduces a data dir to the utterances present in every utterance-keyed file,
# drops duplicate keys and malformed lines, sorts every file, remakes spk2utt,
# and reduces speaker/recording files to what is left. Prints how many were
# dropped from which file and why; the old files go to <data-dir>/.backup/
# (with .backup/dropped listing '<utterance> <reason>').
# e.g. utils/fix_data_dir.sh data/train
set -euo pipefail
. parse_options.sh
if [ $# -ne 1 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.fix_data_dir "$1"

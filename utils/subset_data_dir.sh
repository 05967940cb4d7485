#!/usr/bin/env bash
# Usage: utils/subset_data_dir.sh [--seed S] <src-data-dir> <num-utt> <dest-data-dir>   (N at random)
#        utils/subset_data_dir.sh --first|--last|--per-spk <src-data-dir> <num-utt> <dest-data-dir>
#        utils/subset_data_dir.sh --first|--last|--per-spk <num-utt> <src-data-dir> <dest-data-dir>
#        utils/subset_data_dir.sh --utt-list <utt-list> <src-data-dir> <dest-data-dir>
#        utils/subset_data_dir.sh --spk-list <spk-list> <src-data-dir> <dest-data-dir>
# Writes a data dir with the chosen utterances: every utterance-keyed file
# reduced to them, spk2utt remade, speaker/recording files reduced.
#   --per-spk N   up to N utterances per speaker, evenly spread
#   --seed S      random seed for the random choice (default 777)
# e.g. utils/subset_data_dir.sh --per-spk data/train 10 data/train_10per
set -euo pipefail
mode=random
seed=777
list=
num=
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --first|--last|--per-spk)
      mode=${1#--}
      # Kaldi's form is a flag with the count after the source dir; '--first N' works too.
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then num=$2; shift; fi ;;
    --utt-list|--spk-list) mode=${1#--}; list=${2:?$1 needs a file}; shift ;;
    --seed) seed=${2:?--seed needs a value}; shift ;;
    --*=*) echo "$0: use '$(echo "$1" | cut -d= -f1) value', not '$1'" >&2; exit 1 ;;
    --*) echo "$0: unknown option $1 (see --help)" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
if [ "$mode" = utt-list ] || [ "$mode" = spk-list ] || [ -n "$num" ]; then
  [ $# -eq 2 ] || { sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1; }
  src=$1; dest=$2
else
  [ $# -eq 3 ] || { sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1; }
  src=$1; num=$2; dest=$3
fi
case $mode in
  utt-list|spk-list) sel=("--$mode=$list") ;;
  *) sel=("--$mode=$num") ;;
esac
exec python -m sid.bin.subset_data_dir "${sel[@]}" --seed="$seed" "$src" "$dest"

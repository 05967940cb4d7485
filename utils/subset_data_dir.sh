#!/usr/bin/env bash
# Usage: utils/subset_data_dir.sh [--speakers|--shortest|--first|--last|--per-spk] <src-data-dir> <num-utt> <dest-data-dir>
#        utils/subset_data_dir.sh --utt-list <utt-list> <src-data-dir> <dest-data-dir>
#        utils/subset_data_dir.sh --spk-list <spk-list> <src-data-dir> <dest-data-dir>
# Kaldi's subset_data_dir.sh, choosing the same utterances: every utterance-keyed
# file reduced to them, spk2utt remade, speaker/recording files reduced.
#   (no option)  <num-utt> utterances spread evenly over the data dir
#   --first, --last  the first / last <num-utt> utterances
#   --per-spk    up to <num-utt> utterances per speaker, evenly spread
#   --speakers   whole speakers, in Kaldi's shuffled order, until <num-utt> utterances
#   --shortest   the <num-utt> shortest (utt2num_frames, else the features' lengths)
# '--first N <src> <dest>' (the count right after the option) works too.
# e.g. utils/subset_data_dir.sh --per-spk data/train 10 data/train_10per
set -euo pipefail
mode=num
list=
num=
case "${1:-}" in
  --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
  --first|--last|--per-spk|--speakers|--shortest)
    mode=${1#--}; shift
    if [ $# -eq 3 ] && [[ "$1" =~ ^[0-9]+$ ]] && ! [[ "$2" =~ ^[0-9]+$ ]]; then num=$1; shift; fi ;;
  --utt-list|--spk-list) mode=${1#--}; list=${2:?$1 needs a file}; shift 2 ;;
  --*) echo "$0: invalid option '$1' (see --help)" >&2; exit 1 ;;
esac
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
exec python -m sid.bin.subset_data_dir "${sel[@]}" "$src" "$dest"

#!/usr/bin/env bash
# Usage: utils/data/get_utt2dur.sh [--nj 4] [--read-entire-file false] <data-dir>
# Writes <data-dir>/utt2dur (seconds per utterance) unless an utt2dur covering
# every utterance of utt2spk is already there. With segments, durations come
# from segments; otherwise from audio headers where the format allows (wav,
# flac, ogg/opus, m4a/aac/mp3), decoding pipes, in --nj worker processes.
# e.g. utils/data/get_utt2dur.sh --nj 8 data/train
set -euo pipefail
nj=4
read_entire_file=false
. parse_options.sh
if [ $# -ne 1 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
data=$1
if [ -s "$data/utt2dur" ] && [ -f "$data/utt2spk" ] && \
   [ "$(wc -l < "$data/utt2dur")" -eq "$(wc -l < "$data/utt2spk")" ] && \
   [ ! "$data/wav.scp" -nt "$data/utt2dur" ] && [ ! "$data/segments" -nt "$data/utt2dur" ]; then
  echo "$0: $data/utt2dur already exists and is up to date"
  exit 0
fi
python -m sid.bin.get_utt2dur --nj="$nj" --read-entire-file="$read_entire_file" "$data"

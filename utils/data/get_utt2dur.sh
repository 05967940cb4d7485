#!/usr/bin/env bash
# Usage: utils/data/get_utt2dur.sh [--nj 4] [--cmd run.pl] [--read-entire-file false] <data-dir>
# Writes <data-dir>/utt2dur (seconds per utterance) unless an utt2dur covering
# every utterance of utt2spk is already there and newer than wav.scp/segments.
# With segments, durations come from segments; otherwise from audio headers where
# the format allows (wav, flac, ogg/opus, m4a/aac/mp3), decoding pipes.
#   --nj N     parallel workers
#   --cmd CMD  run N jobs through a job runner (e.g. "$train_cmd", logs in
#              <data-dir>/log/); without it the N workers are processes here
# e.g. utils/data/get_utt2dur.sh --nj 8 data/train
set -euo pipefail
nj=4
cmd=
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
if [ -z "$cmd" ] || [ "$nj" -le 1 ]; then
  exec python -m sid.bin.get_utt2dur --nj="$nj" --read-entire-file="$read_entire_file" "$data"
fi
split_data.sh --per-utt "$data" "$nj"
sdata=$data/split${nj}utt
$cmd JOB=1:$nj "$data/log/get_utt2dur.JOB.log" \
  python -m sid.bin.get_utt2dur --nj=1 --read-entire-file="$read_entire_file" "$sdata/JOB"
# The parts are contiguous in utt2spk order, so in job order they are sorted.
for n in $(seq "$nj"); do cat "$sdata/$n/utt2dur"; done > "$data/.utt2dur.tmp"
mv "$data/.utt2dur.tmp" "$data/utt2dur"
echo "$0: wrote $data/utt2dur"

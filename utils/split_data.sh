#!/usr/bin/env bash
# Usage: utils/split_data.sh [--per-utt] <data-dir> <num-to-split>
# Writes <data-dir>/split<N>/<1..N>/ (split<N>utt with --per-utt) holding every
# utterance-keyed file present, its spk2utt, and the speaker/recording files
# (wav.scp with segments) reduced to what each part uses. Parts are contiguous
# and balanced by utterance count; by speaker (no speaker in two parts) unless
# --per-utt. An up-to-date split (same source files) is reused.
# e.g. utils/split_data.sh data/train 40
set -euo pipefail
per_utt=false
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --per-utt) per_utt=true ;;   # a flag, as in Kaldi
    --per-utt=*) per_utt=${1#*=} ;;
    --*) echo "$0: unknown option $1 (see --help)" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
if [ $# -ne 2 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.split_data --per-utt="$per_utt" "$1" "$2"

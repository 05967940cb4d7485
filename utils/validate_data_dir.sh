#!/usr/bin/env bash
# Usage: utils/validate_data_dir.sh [--no-feats] [--no-wav] [--no-text] [--non-print] [--no-spk-sort]
#                                   [--check-audio] [--no-check-frames] <data-dir>
# Checks a Kaldi data dir and prints EVERY problem with its file:line (unsorted
# lines, duplicate keys, utt2spk/spk2utt mismatch, ids missing between files,
# bad segments, ...). Exit status 1 if there is any.
#   --no-feats         do not require feats.scp (still checked if present)
#   --no-wav           do not require wav.scp (still checked if present)
#   --no-text          accepted for Kaldi compatibility; text is never required
#   --non-print        allow non-printable (control) characters in text
#   --no-spk-sort      do not require utt2spk to be sorted by speaker as well
#   --check-audio      check that every audio file named in wav.scp exists
#   --no-check-frames  skip comparing archive frame counts with utt2num_frames
# e.g. utils/validate_data_dir.sh --no-feats data/train
set -euo pipefail
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --no-feats|--no-wav|--no-text|--non-print|--no-spk-sort|--check-audio) opts+=("$1=true") ;;
    --no-check-frames) opts+=(--check-frames=false) ;;
    --*) echo "$0: unknown option $1 (see --help)" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
if [ $# -ne 1 ]; then
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1
fi
exec python -m sid.bin.validate_data_dir "${opts[@]}" "$1"

#!/usr/bin/env bash
# Usage: utils/utt2spk_to_spk2utt.pl [<utt2spk>...] > <spk2utt>
# spk2utt from utt2spk (stdin if no file), speakers in order of first
# appearance. (Kaldi's name; implemented by python -m sid.bin.utt2spk_to_spk2utt.)
# e.g. utils/utt2spk_to_spk2utt.pl data/train/utt2spk > data/train/spk2utt
set -euo pipefail
case "${1:-}" in --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
exec python -m sid.bin.utt2spk_to_spk2utt "$@"

#!/usr/bin/env bash
# Usage: utils/spk2utt_to_utt2spk.pl [<spk2utt>...] > <utt2spk>
# utt2spk from spk2utt (stdin if no file), in spk2utt order.
# (Kaldi's name; implemented by python -m sid.bin.spk2utt_to_utt2spk.)
# e.g. utils/spk2utt_to_utt2spk.pl data/train/spk2utt > data/train/utt2spk
set -euo pipefail
case "${1:-}" in --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
exec python -m sid.bin.spk2utt_to_utt2spk "$@"

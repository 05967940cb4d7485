#!/usr/bin/env bash
# Usage: utils/filter_scp.pl [--exclude] [-f <field>] <id-list> [<in.scp>] > <out.scp>
# Prints the lines of <in.scp> (stdin if absent) whose field <field> (default 1)
# is the first field of some line of <id-list>; with --exclude, the others.
# Input order is kept. (Kaldi's name; implemented by python -m sid.bin.filter_scp.)
# e.g. utils/filter_scp.pl data/dev/utt2spk data/all/feats.scp > data/dev/feats.scp
set -euo pipefail
case "${1:-}" in --help|-h) sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac
args=()
for a in "$@"; do
  if [ "$a" = --exclude ]; then args+=(--exclude=true); else args+=("$a"); fi
done
exec python -m sid.bin.filter_scp "${args[@]}"

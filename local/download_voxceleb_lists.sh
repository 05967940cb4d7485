#!/usr/bin/env bash
# Usage: local/download_voxceleb_lists.sh [--base-urls "URL ..."] <dest-dir>
#
# Fetches the official VoxCeleb1 trial lists (for users who are online) into
# <dest-dir>: veri_test.txt and veri_test2.txt (Vox1-O, original and cleaned),
# list_test_all.txt and list_test_all2.txt (Vox1-E), list_test_hard.txt and
# list_test_hard2.txt (Vox1-H). A list already there is not fetched again; each
# is downloaded under a temporary name and renamed only when complete.
#   --base-urls "URL ..."   folders holding the lists, tried in turn (default: the
#                           VGG site, then its mirror at KAIST)
# e.g. local/download_voxceleb_lists.sh data/voxceleb1_lists
set -euo pipefail

base_urls="https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta https://mm.kaist.ac.kr/datasets/voxceleb/meta"
. utils/parse_options.sh

if [ $# -ne 1 ]; then
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2
  exit 1
fi
dest=$1
mkdir -p "$dest"

if command -v wget >/dev/null; then
  fetch() { wget -q -O "$2" "$1"; }
elif command -v curl >/dev/null; then
  fetch() { curl -fsSL -o "$2" "$1"; }
else
  echo "$0: needs wget or curl to download the lists" >&2
  exit 1
fi

for name in veri_test.txt veri_test2.txt list_test_all.txt list_test_all2.txt list_test_hard.txt list_test_hard2.txt; do
  [ -s "$dest/$name" ] && continue
  for url in $base_urls; do
    fetch "$url/$name" "$dest/$name.tmp" && break
    rm -f "$dest/$name.tmp"
  done
  if [ ! -s "$dest/$name.tmp" ]; then
    echo "$0: could not download $name from any of: $base_urls; put the official lists in $dest by hand" >&2
    exit 1
  fi
  mv "$dest/$name.tmp" "$dest/$name"
  echo "$0: downloaded $dest/$name"
done

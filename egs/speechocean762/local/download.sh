#!/usr/bin/env bash
# Usage: local/download.sh <dir>
# Fetches and unpacks speechocean762 (OpenSLR resource 101, Apache-2.0, about 520 MB)
# into <dir>/speechocean762 (WAVE/, train/, test/). Exits non-zero, saying so, when
# offline. A finished download is not repeated.
set -euo pipefail
if [ $# -ne 1 ]; then sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0" >&2; exit 1; fi
dir=$1
url=https://www.openslr.org/resources/101/speechocean762.tar.gz
[ -d "$dir/speechocean762/train" ] && exit 0
mkdir -p "$dir"
echo "$0: downloading $url" >&2
if ! python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
     "$url" "$dir/speechocean762.tar.gz.part" 2>/dev/null; then
  echo "$0: could not download $url (offline?)" >&2
  rm -f "$dir/speechocean762.tar.gz.part"
  exit 1
fi
mv "$dir/speechocean762.tar.gz.part" "$dir/speechocean762.tar.gz"
tar -xzf "$dir/speechocean762.tar.gz" -C "$dir"
rm "$dir/speechocean762.tar.gz"

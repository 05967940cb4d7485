#!/usr/bin/env bash
# Usage: tools/setup_env.sh
# Creates the virtual environment .venv at the repository root and installs sid
# with its dependencies into it. Torch goes in first, pinned, so that no other
# package drags in a multi-GB CUDA build (override with SID_TORCH="torch==X").
# Rerunning reuses what is there: it reinstalls only when pyproject.toml's content or the
# checkout the venv serves changed (its stamp records both: a fresh clone or a checkout that
# only touched the file keeps the venv). Runs started together (two recipes) wait for each
# other's set-up rather than install into one venv at once.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
venv=$root/.venv
python=${PYTHON:-python3}
stamp=$venv/.sid-installed

exec 9<"$root/tools/setup_env.sh"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  echo "$0: creating $venv"
  "$python" -m venv "$venv"
fi
want="$root $(md5sum < "$root/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
start=$(date +%s)
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${SID_TORCH:-torch==2.13.0}"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -e "$root[test]"
echo "$want" > "$stamp"
echo "$0: environment ready in $(( $(date +%s) - start )) s"

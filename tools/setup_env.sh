#!/usr/bin/env bash
# Usage: tools/setup_env.sh
# Creates the virtual environment .venv at the repository root and installs sid
# with its dependencies into it. Torch goes in first, pinned, so that no other
# package drags in a multi-GB CUDA build (override with SID_TORCH="torch==X").
# Rerunning reuses what is there: it reinstalls only when pyproject.toml changed.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
venv=$root/.venv
python=${PYTHON:-python3}
stamp=$venv/.sid-installed

if [ ! -x "$venv/bin/python" ]; then
  echo "$0: creating $venv"
  "$python" -m venv "$venv"
fi
if [ -f "$stamp" ] && [ "$stamp" -nt "$root/pyproject.toml" ]; then
  exit 0
fi
start=$(date +%s)
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check "${SID_TORCH:-torch==2.13.0}"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -e "$root[test]"
touch "$stamp"
echo "$0: environment ready in $(( $(date +%s) - start )) s"

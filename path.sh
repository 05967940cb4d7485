# Source this from the repository root or a recipe folder (egs/<corpus>/path.sh
# links here): puts the project's venv, utils/ and steps/ on PATH and makes
# `python -m sid.bin.<tool>` importable from anywhere.
SID_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
export SID_ROOT
export PATH=$SID_ROOT/.venv/bin:$SID_ROOT/utils:$SID_ROOT/steps:$PATH
export PYTHONPATH=$SID_ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
# Kaldi's sort order: data-dir files are sorted bytewise.
export LC_ALL=C

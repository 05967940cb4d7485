#!/usr/bin/env bash
# Usage: ./test.sh [pytest options]
# Sets up .venv on first use (tools/setup_env.sh) and runs the whole test suite.
# Tests that need ../shared (the shared corpora and Kaldi references) skip with
# a reason where it is absent. The 15 slowest tests are listed at the end, to keep
# an eye on CI time.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
tools/setup_env.sh
. ./path.sh
exec python -m pytest -q -ra --durations=15 "$@"

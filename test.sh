#!/usr/bin/env bash
# Usage: ./test.sh [pytest options]
# Sets up .venv on first use (tools/setup_env.sh) and runs the whole test suite.
# Tests that need ../shared (the shared corpora and Kaldi references) skip with
# a reason where it is absent. The 15 slowest tests are listed at the end, to keep
# an eye on CI time. Two pytest-xdist workers, each test file on one of them (its
# module fixtures are then made once): most tests use one core, so on the 2-core CI
# machine the suite takes two thirds of the time (./test.sh -n 0: one process).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
tools/setup_env.sh
. ./path.sh
exec python -m pytest -q -ra --durations=15 -n 2 --dist loadfile "$@"

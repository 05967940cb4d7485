#!/usr/bin/env bash
# Usage: run.pl [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [JOB=1:N] <log-file> <command>...
# Kaldi's run.pl: runs the command once per job on this machine, JOB replaced by
# the job number in the log name and the command; one log per job; exits 1
# naming each failed job's log. Implemented in sid/jobs/local.py.
# Works without path.sh too (it needs only the standard library).
PYTHONPATH=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH} \
  exec python3 -m sid.bin.run_pl "$@"

#!/usr/bin/env bash
# Usage: queue.pl [--config conf/queue.conf] [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [--time T] \
#                 [JOB=1:N] <log-file> <command>...
# Kaldi's queue.pl for (Son of) Grid Engine: submits the jobs as one
# `qsub -t 1:N -tc M` array job, options mapped through conf/queue.conf (Kaldi's
# format; built-in default if absent), waits for every task, writes one log per
# job and exits 1 naming each failed job's log. Implemented in sid/jobs/cluster.py.
PYTHONPATH=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH} \
  exec python3 -m sid.bin.queue_pl "$@"

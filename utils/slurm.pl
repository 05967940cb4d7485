#!/usr/bin/env bash
# Usage: slurm.pl [--config conf/slurm.conf] [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [--time T] \
#                 [JOB=1:N] <log-file> <command>...
# Kaldi's slurm.pl: submits the jobs as one `sbatch --array=1-N%M` job, options
# mapped through conf/slurm.conf (Kaldi's format; built-in default if absent),
# waits for every task, writes one log per job and exits 1 naming each failed
# job's log. Implemented in sid/jobs/cluster.py.
PYTHONPATH=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH} \
  exec python3 -m sid.bin.slurm_pl "$@"

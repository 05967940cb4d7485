"""run.pl: Kaldi's local job runner (see sid.jobs.local). Usage:
run.pl [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [JOB=1:N] <log-file> <command>..."""

from sid.cli import run_main
from sid.jobs.local import main

if __name__ == "__main__":
    run_main(main)

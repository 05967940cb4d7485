"""queue.pl: Kaldi's queue.pl on Sun/Son of Grid Engine: one qsub -t array job (see sid.jobs.cluster). Usage:
queue.pl [--config FILE] [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [--time T] [JOB=1:N] <log-file> <command>..."""

from sid.cli import run_main
from sid.jobs.cluster import GridEngine, main

if __name__ == "__main__":
    run_main(lambda: main(GridEngine()))

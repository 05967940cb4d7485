"""slurm.pl: Kaldi's slurm.pl on Slurm: one sbatch array job (see sid.jobs.cluster). Usage:
slurm.pl [--config FILE] [--max-jobs-run N] [--mem M] [--num-threads N] [--gpu N] [--time T] [JOB=1:N] <log-file> <command>..."""

from sid.cli import run_main
from sid.jobs.cluster import Slurm, main

if __name__ == "__main__":
    run_main(lambda: main(Slurm()))

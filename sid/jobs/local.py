"""run.pl: run the jobs on this machine, at most ``--max-jobs-run`` at once.

Without ``--max-jobs-run`` as many jobs run at once as there are CPUs (with
``--gpu N``: as many as ``nvidia-smi -L`` lists GPUs, else one), as in Kaldi.
``--mem``, ``--time`` and scheduler options are accepted and ignored;
``--num-threads`` only shows in the logs' accounting line; ``--num-nodes`` above 1
is refused (it needs slurm.pl or queue.pl).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from sid.jobs.common import Interrupt, JobArgs, JobsError, guarded, parse_args, report, run_logged

PROG = "run.pl"


def _gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU"))


def default_max_jobs(args: JobArgs) -> int:
    if args.int_option("gpu", 0, 0) > 0:
        return max(_gpu_count(), 1)
    return len(os.sched_getaffinity(0))


def run_jobs(args: JobArgs) -> dict[int, int | None]:
    """Run every job; ``{job: exit status}``, None for jobs never started because of an interrupt."""
    nodes = args.int_option("num_nodes", 1, 1)
    if nodes > 1:
        raise JobsError(f"--num-nodes {nodes}: run.pl runs jobs on this machine only; a job spanning "
                        "several nodes needs slurm.pl or queue.pl (SID_RUNNER=slurm.pl, see cmd.sh)")
    max_jobs = args.int_option("max_jobs_run", 0, 1) or default_max_jobs(args)
    threads = args.int_option("num_threads", 1, 1)
    interrupt = Interrupt()
    interrupt.install()

    def one(task: int) -> int | None:
        if interrupt.signum:
            return None
        return run_logged(args.command_for(task), args.log_for(task), threads=threads, interrupt=interrupt)

    with ThreadPoolExecutor(max_workers=min(max_jobs, len(args.tasks))) as pool:
        futures = {task: pool.submit(one, task) for task in args.tasks}
        results = {task: f.result() for task, f in futures.items()}
    if interrupt.signum:
        started = sum(rc is not None for rc in results.values())
        print(f"{PROG}: interrupted by signal {interrupt.signum}; killed the running jobs "
              f"({started} of {len(results)} had started)", file=sys.stderr)
        sys.exit(128 + interrupt.signum)
    return results


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = parse_args(sys.argv[1:] if argv is None else argv, PROG)
        return report(PROG, args, run_jobs(args))

    return guarded(PROG, body)

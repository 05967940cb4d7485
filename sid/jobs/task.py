"""One array task of a slurm.pl / queue.pl job, run on the node by the job script:
``python -m sid.jobs.task <spec.json>``. The task number comes from the
environment variable the spec names (SLURM_ARRAY_TASK_ID, SGE_TASK_ID). Runs
the command into the job's log like run.pl and then writes the exit status
file the runner waits for. SIGTERM (scancel, qdel, a time limit) kills the
command and still writes the log footer and the status. A multi-node job's
command is started on every node (``sid.jobs.nodes``); failing training ranks
record themselves in ``<stem>.<task>.failures`` ($SID_RANK_FAILURES, see
``sid.jobs.rank``) for the runner's report."""

from __future__ import annotations

import json
import os
import shlex
import sys

from sid.data.table import atomic_path
from sid.jobs.common import Interrupt, JobArgs, run_logged
from sid.jobs.nodes import slurm_command


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("Usage: python -m sid.jobs.task <spec.json>", file=sys.stderr)
        return 1
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    task = int(os.environ[spec["task_env"]])
    job = JobArgs(jobname=spec["jobname"], logfile=spec["logfile"], command=spec["command"])
    command = job.command_for(task)
    if spec.get("num_nodes", 1) > 1:
        if spec["launch"] == "srun":
            command = slurm_command(command)
        else:
            command = f"{shlex.quote(sys.executable)} -m sid.jobs.nodes {shlex.quote(spec['stem'] + '.node.sh')}"
    os.environ["SID_RANK_FAILURES"] = f"{spec['stem']}.{task}.failures"
    interrupt = Interrupt()
    interrupt.install()
    rc = run_logged(command, job.log_for(task), threads=spec["threads"], interrupt=interrupt,
                    show_host=True)
    with atomic_path(f"{spec['stem']}.{task}.status") as tmp:
        tmp.write_text(f"{rc}\n", encoding="utf-8")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A job spanning several nodes (``slurm.pl`` / ``queue.pl --num-nodes N``): the
command runs once per node, all output in the one job log, each line prefixed
with the node's number (``1: ...``); when one node's command fails the others are
stopped, so the job ends.

* Slurm: ``srun --kill-on-bad-exit=1 --label`` starts it in every task of the
  allocation (one task per node); the command finds its place in SLURM_PROCID,
  SLURM_STEP_NUM_TASKS and SLURM_STEP_NODELIST.
* Grid Engine: a parallel environment with one slot per host (``allocation_rule 1``,
  ``control_slaves TRUE``) gives the hosts in $PE_HOSTFILE; ``python -m
  sid.jobs.nodes <script>`` (run on the first) starts ``bash <script>`` on each
  with ``qrsh -inherit``, setting SID_NUM_NODES, SID_NODE_RANK and SID_MASTER_ADDR
  (the first host).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time


def slurm_command(command: str) -> str:
    # --export=ALL: the batch step may carry sbatch's --export=PATH, which srun would inherit.
    return f"srun --export=ALL --kill-on-bad-exit=1 --unbuffered --label bash -c {shlex.quote(command)}"


def sge_hosts(pe_hostfile: str) -> list[str]:
    """The hosts of $PE_HOSTFILE (``host slots queue processors`` lines), each once, in order."""
    hosts: list[str] = []
    with open(pe_hostfile, encoding="utf-8") as f:
        for line in f:
            if line.split() and line.split()[0] not in hosts:
                hosts.append(line.split()[0])
    return hosts


def _relay(src, node: int) -> None:
    prefix = f"{node}: ".encode()
    for line in iter(src.readline, b""):
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


def run_sge(script: str) -> int:
    """Run ``bash <script>`` on every host of the parallel job; the first failure stops the rest."""
    pe_hostfile = os.environ.get("PE_HOSTFILE")
    if not pe_hostfile:
        print("sid.jobs.nodes: no $PE_HOSTFILE: not a Grid Engine parallel job "
              "(conf/queue.conf must map num_nodes to a parallel environment: 'option num_nodes=* -pe <pe> $0')",
              file=sys.stderr)
        return 1
    hosts = sge_hosts(pe_hostfile)
    procs, relays = [], []
    for rank, host in enumerate(hosts):
        env = [f"SID_NUM_NODES={len(hosts)}", f"SID_NODE_RANK={rank}", f"SID_MASTER_ADDR={hosts[0]}"]
        if os.environ.get("SID_RANK_FAILURES"):  # qrsh -inherit passes no environment
            env.append(f"SID_RANK_FAILURES={os.environ['SID_RANK_FAILURES']}")
        argv = ["qrsh", "-inherit", "-nostdin", host, "/usr/bin/env", *env, "/bin/bash", script]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        procs.append(p)
        relays.append(threading.Thread(target=_relay, args=(p.stdout, rank), daemon=True))
        relays[-1].start()
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
        failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
        time.sleep(0.2)
    failed = failed if failed is not None else next((i for i, p in enumerate(procs) if p.returncode != 0), None)
    if failed is not None:
        print(f"sid.jobs.nodes: node {failed} ({hosts[failed]}) failed (exit code {procs[failed].returncode}); "
              "stopping the other nodes", file=sys.stderr, flush=True)
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
            for p in procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, sig)
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=wait)
    for t in relays:
        t.join(timeout=5)
    return 0 if failed is None else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("Usage: python -m sid.jobs.nodes <script>  (in a Grid Engine parallel job)", file=sys.stderr)
        sys.exit(1)
    sys.exit(run_sge(sys.argv[1]))

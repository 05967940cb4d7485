"""One rank of a distributed training, as torchrun starts it:
``torchrun ... -m sid.jobs.rank <command> [<args>...]`` (see steps/train_xvector.sh).

Runs the command with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
GROUP_RANK: the node's rank) and copies its output, stdout and stderr together,
with every line prefixed ``[rank R]``, so that all ranks of all nodes can share
one job log. When the command dies (an exception, the OOM killer, a signal) it
prints which rank it was and where, e.g.::

    [rank 3] ERROR: rank 3 of 16 (local rank 3 on node 0, host gpu017) was killed by signal 9 (SIGKILL)

and appends that line to the file ``$SID_RANK_FAILURES`` names (the runners'
job tasks set it and put the first such line in their failure report). A rank
stopped by torchrun (SIGTERM, because another rank failed) forwards the signal
to the command and claims nothing. The exit status is the command's (128+N for
signal N).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys


def death_message(returncode: int, rank: str, world: str, local_rank: str, node: str, host: str) -> str:
    """What a failed rank reports: who, where, how (``returncode`` < 0: killed by that signal)."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        how = f"was killed by signal {-returncode}{name}"
    else:
        how = f"exited with code {returncode}"
    return f"rank {rank} of {world} (local rank {local_rank} on node {node}, host {host}) {how}"


def _copy_prefixed(src, dst, prefix: bytes) -> None:
    """Copy ``src`` to ``dst`` as it comes, ``prefix`` before each line (\\r counts as a
    line end so that progress bars keep it)."""
    at_start = True
    while data := src.read1(1 << 16):
        out = []
        for piece in re.split(rb"(?<=[\r\n])", data):
            if piece:
                out += [prefix, piece] if at_start else [piece]
                at_start = piece.endswith((b"\n", b"\r"))
        # One write: the line must not be split between its prefix and its text (srun
        # --unbuffered labels each write it receives).
        dst.write(b"".join(out))
        dst.flush()


def main(argv: list[str]) -> int:
    if not argv:
        print("Usage: python -m sid.jobs.rank <command> [<args>...]  (under torchrun)", file=sys.stderr)
        return 1
    env = os.environ
    rank, world = env.get("RANK", "0"), env.get("WORLD_SIZE", "1")
    local_rank, node = env.get("LOCAL_RANK", "0"), env.get("GROUP_RANK", "0")
    stopped = False
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**env, "PYTHONUNBUFFERED": "1"})
    except OSError as err:
        print(f"[rank {rank}] ERROR: cannot run {argv[0]}: {err.strerror}", file=sys.stderr)
        return 1

    def forward(signum, _frame):
        nonlocal stopped
        stopped = True
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    _copy_prefixed(proc.stdout, sys.stdout.buffer, f"[rank {rank}] ".encode())
    rc = proc.wait()
    if rc != 0 and not stopped:
        msg = death_message(rc, rank, world, local_rank, node, socket.gethostname())
        print(f"[rank {rank}] ERROR: {msg}", flush=True)
        if env.get("SID_RANK_FAILURES"):
            with open(env["SID_RANK_FAILURES"], "a", encoding="utf-8") as f:
                f.write(msg + "\n")
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Jobs spanning several nodes (``--num-nodes``): the runners' refusals, the rank
wrapper's prefixes and failure message, Grid Engine's per-node start against a
fake qsub/qrsh, and on the CI Slurm a 2-"node" (2 tasks on its one node, CPU,
gloo) training: each rank its own shard, a killed rank ends the job naming it,
and the rerun resumes from the last checkpoint."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sid.jobs.cluster import first_rank_failure
from sid.jobs.nodes import sge_hosts
from sid.jobs.rank import _copy_prefixed, death_message

sys.path.insert(0, str(Path(__file__).parent))
from test_runners import REPO, fake_sge, runner, slurm  # noqa: E402,F401  (fixtures)
from training_data import corpus_features  # noqa: E402


# ---------------------------------------------------------------- units


def test_death_message_names_rank_node_and_host():
    assert death_message(-9, "3", "16", "3", "1", "gpu017") == \
        "rank 3 of 16 (local rank 3 on node 1, host gpu017) was killed by signal 9 (SIGKILL)"
    assert death_message(1, "0", "2", "0", "0", "vm") == "rank 0 of 2 (local rank 0 on node 0, host vm) exited with code 1"


def test_first_rank_failure_prefers_the_killed_rank(tmp_path):
    path = tmp_path / "x.1.failures"
    assert first_rank_failure(str(path)) is None
    path.write_text("rank 0 of 2 (local rank 0 on node 0, host a) exited with code 1\n"
                    "rank 1 of 2 (local rank 0 on node 1, host b) was killed by signal 9 (SIGKILL)\n")
    assert first_rank_failure(str(path)).startswith("rank 1 of 2")
    path.write_text("rank 5 of 8 (local rank 1 on node 1, host b) exited with code 1\nrank 0 of 8 ...\n")
    assert first_rank_failure(str(path)).startswith("rank 5 of 8")


def test_rank_output_prefixed_line_by_line():
    out = io.BytesIO()
    _copy_prefixed(io.BufferedReader(io.BytesIO(b"a\nb 50%\rb 100%\r\nlast")), out, b"[rank 2] ")
    assert out.getvalue() == b"[rank 2] a\n[rank 2] b 50%\r[rank 2] b 100%\r[rank 2] \n[rank 2] last"


def test_rank_wrapper_reports_its_death(tmp_path, sid_env):
    env = dict(sid_env, RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", GROUP_RANK="0",
               SID_RANK_FAILURES=str(tmp_path / "failures"))
    res = subprocess.run([sys.executable, "-m", "sid.jobs.rank", "bash", "-c", "echo hello; kill -9 $$"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 128 + 9
    want = f"rank 1 of 2 (local rank 1 on node 0, host {socket.gethostname()}) was killed by signal 9 (SIGKILL)"
    assert res.stdout == f"[rank 1] hello\n[rank 1] ERROR: {want}\n"
    assert (tmp_path / "failures").read_text() == want + "\n"


def test_run_pl_refuses_several_nodes(tmp_path, sid_env):
    res = runner("run.pl", ["--num-nodes", "2", "log/t.log", "true"], tmp_path, sid_env)
    assert res.returncode == 1
    assert "--num-nodes 2: run.pl runs jobs on this machine only" in res.stderr and "slurm.pl or queue.pl" in res.stderr
    assert runner("run.pl", ["--num-nodes", "1", "log/t.log", "true"], tmp_path, sid_env).returncode == 0


def test_cluster_runners_refuse_a_job_range_with_several_nodes(tmp_path, fake_sge):  # noqa: F811
    res = runner("queue.pl", ["--num-nodes", "2", "JOB=1:3", "log/t.JOB.log", "true"], tmp_path, fake_sge)
    assert res.returncode == 1 and "drop the job range JOB=1:3" in res.stderr


def test_sge_hosts_each_once(tmp_path):
    (tmp_path / "pe").write_text("node7 2 g.q@node7 UNDEFINED\nnode3 1 g.q@node3 UNDEFINED\nnode7 1 h.q@node7 UNDEFINED\n")
    assert sge_hosts(str(tmp_path / "pe")) == ["node7", "node3"]


# ---------------------------------------------------------------- queue.pl, fake Grid Engine parallel job

FAKE_QRSH = r"""#!/usr/bin/env bash
# Fake qrsh -inherit -nostdin HOST CMD...: runs CMD here.
[ "$1" = -inherit ] && [ "$2" = -nostdin ] || { echo "fake qrsh: unexpected $*" >&2; exit 2; }
shift 3
exec "$@"
"""


def test_queue_pl_starts_the_command_on_every_node(tmp_path, fake_sge):  # noqa: F811
    bindir = Path(fake_sge["FAKE_SGE_DIR"])
    (bindir / "qrsh").write_text(FAKE_QRSH)
    (bindir / "qrsh").chmod(0o755)
    (tmp_path / "pe_hostfile").write_text("hostA 1 g.q@hostA UNDEFINED\nhostB 1 g.q@hostB UNDEFINED\n")
    env = dict(fake_sge, PE_HOSTFILE=str(tmp_path / "pe_hostfile"))
    cmd = ["echo", "node", "$SID_NODE_RANK", "of", "$SID_NUM_NODES", "master", "$SID_MASTER_ADDR", "in", "$PWD",
           "failures", "to", "$SID_RANK_FAILURES"]
    res = runner("queue.pl", ["--num-nodes", "2", "--gpu", "1", "log/mn.log", *cmd], tmp_path, env)
    assert res.returncode == 0, res.stderr
    assert "-pe node 2" in (bindir / "qsub.args").read_text()
    log = (tmp_path / "log/mn.log").read_text()
    for node in (0, 1):
        assert f"{node}: node {node} of 2 master hostA in {tmp_path} failures to {tmp_path}/log/q/mn.1.failures\n" in log, log

    # Node 1 fails at once, node 0 would run a minute: the job ends, naming node 1.
    res = runner("queue.pl", ["--num-nodes", "2", "log/mn.log", "test", "$SID_NODE_RANK", "=", "0", "&&", "exec", "sleep", "60"],
                 tmp_path, env, timeout=50)
    assert res.returncode == 1
    assert "queue.pl: job failed (exit code 1), log is in log/mn.log" in res.stderr
    assert "node 1 (hostB) failed (exit code 1); stopping the other nodes" in (tmp_path / "log/mn.log").read_text()


# ---------------------------------------------------------------- slurm.pl, real Slurm: training on 2 "nodes"

# The CI Slurm has one node: N tasks on it stand in for N nodes (one task per node on a real cluster).
SLURM_CONF = """command sbatch --export=PATH
option time=* --time $0
option num_nodes=* --nodes=1 --ntasks=$0 --cpus-per-task=1
option gpu=0
default gpu=0
"""


def _rank_pid(rank: int, exp: Path) -> int | None:
    """The training process of ``rank`` (not its sid.jobs.rank wrapper) for ``exp``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if b"sid.bin.train_xvector" in cmd and b"sid.jobs.rank" not in cmd and cwd == str(exp.parent) \
                and f"RANK={rank}".encode() in env:
            return int(pid)
    return None


@pytest.mark.slow
def test_slurm_two_nodes_train_kill_a_rank_then_resume(slurm, corpus, repo, sid_env, tmp_path):  # noqa: F811
    feats = corpus_features(corpus, tmp_path / "feats")
    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["training"]["epochs"] = 2
    cfg["data"].update(min_frames=100, max_frames=100, chunks_per_utt=1)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "slurm.conf").write_text(SLURM_CONF)
    exp = tmp_path / "exp"
    cmd = [str(REPO / "utils" / "slurm.pl"), "--config", "slurm.conf", "--num-nodes", "2", "--time", "10",
           "exp/log/train_job.log", str(REPO / "steps" / "train_xvector.sh"), "--num-workers", "0", "--model-config", "tiny.yaml",
           "--train-opts", "--write-chunk-lists=true --progress=false --tensorboard=false --checkpoint-steps=1",
           str(feats / "train"), "exp"]
    env = dict(sid_env, OMP_NUM_THREADS="1", SID_JOBS_GRACE="5")
    log = exp / "log" / "train_job.log"

    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ((exp / "models" / "last.pt").exists() and (pid := _rank_pid(1, exp))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    host = re.escape(socket.gethostname())
    assert re.search(rf"slurm\.pl: job failed \(exit code \d+\), log is in exp/log/train_job\.log; "
                     rf"rank 1 of 2 \(local rank 0 on node [01], host {host}\) was killed by signal 9 \(SIGKILL\)", err), err
    text = log.read_text()
    assert re.search(r"^[01]: \[rank 1\] ERROR: rank 1 of 2 .* was killed by signal 9", text, re.M), text
    assert not (exp / "final.pt").exists()

    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr + log.read_text()[-3000:]
    text = log.read_text()
    assert re.search(r"^[01]: \[rank 0\] LOG .*Resuming from .*last\.pt: epoch \d, batch \d+", text, re.M), text
    assert re.search(r"^[01]: \[rank 1\] LOG .*Resuming from", text, re.M), text
    assert (exp / "final.pt").exists()
    shards = [{line.split()[0] for line in (exp / "log" / "chunks" / f"epoch2.rank{r}.txt").read_text().splitlines()}
              for r in (0, 1)]
    assert shards[0] and shards[1] and not shards[0] & shards[1], "the ranks share chunks"

"""Multi-command jobs cannot hide a failure, and two runs on the same dirs cannot corrupt each
other (steps/prepare_feats_for_egs.sh's CMN | select-voiced | copy chain, through run.pl):
  * the CMN process of one job killed after two whole utterances: the job fails (pipefail), its
    outputs never appear, and the rerun redoes it and gets every utterance right;
  * two concurrent runs on the same dirs: the second waits for the first's lock and then reuses
    its finished jobs; neither removes the other's temporary files;
  * a lock held elsewhere with SID_LOCK_WAIT=false: the step stops, naming the holder.
A stand-in `python` on PATH (first) injects the kill and holds a job open where a test needs it."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time

import numpy as np
import pytest

from sid import provenance
from sid.features.cmvn import apply_cmvn_sliding
from sid.features.vad import select_voiced_frames
from sid.kaldi_io import TableWriter, random_access, read_matrices

FRAMES, DIM = 200, 20
UTTS = [f"s{s}-u{u}" for s in range(4) for u in range(5)]   # keys of one length: items of one size
ITEM_BYTES = len("s0-u0 ") + 15 + FRAMES * DIM * 4           # an uncompressed float matrix in the ark

WRAPPER = """#!/bin/bash
# Stands in for python in the jobs of a test.
if [[ " $* " == *" sid.bin.apply_cmvn_sliding "* && "$*" == *"/split2/2/"* ]]; then
  if [ -n "$KILL_MARK" ] && [ ! -e "$KILL_MARK" ]; then
    touch "$KILL_MARK"
    # Two whole utterances reach the next command, then the CMN process dies (SIGKILL).
    "{real}" "$@" | head -c {cut}
    kill -9 $$
  fi
  if [ -n "$HOLD_UNTIL" ]; then
    "{real}" "$@"; status=$?
    # The job's writer stays open (its temporary files exist) until the test says go.
    for _ in $(seq 600); do [ -e "$HOLD_UNTIL" ] && break; sleep 0.1; done
    exit $status
  fi
fi
exec "{real}" "$@"
"""


@pytest.fixture()
def setup(tmp_path, sid_env):
    rng = np.random.default_rng(0)
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    with TableWriter(f"ark,scp:{tmp_path}/raw.ark,{data}/feats.scp") as f, \
         TableWriter(f"ark,scp:{tmp_path}/vad.ark,{data}/vad.scp") as v:
        for u in UTTS:
            f.write(u, rng.standard_normal((FRAMES, DIM)).astype(np.float32) + 3)
            v.write(u, (rng.random(FRAMES) < 0.7).astype(np.float32))
    conf = tmp_path / "fbank.conf"
    conf.write_text(f"--num-mel-bins={DIM}\n")
    provenance.write_record(data, "fbank", conf)   # as steps/make_fbank.sh leaves it
    (data / "wav.scp").write_text("".join(f"{u} cat {u}.wav |\n" for u in UTTS))  # never read here
    (data / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in UTTS))
    (data / "spk2utt").write_text("".join(f"s{s} " + " ".join(u for u in UTTS if u.startswith(f"s{s}-")) + "\n"
                                          for s in range(4)))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").write_text(WRAPPER.replace("{real}", sys.executable).replace("{cut}", str(2 * ITEM_BYTES)))
    (bindir / "python").chmod(0o755)
    env = dict(sid_env, PATH=f"{bindir}:{sid_env['PATH']}")
    step = ["steps/prepare_feats_for_egs.sh", "--nj", "2", "--compress", "false", str(data),
            str(tmp_path / "data" / "train_cmn"), str(tmp_path / "exp" / "train_cmn")]
    return tmp_path, env, step


def _expected(tmp_path):
    feats = random_access(f"scp:{tmp_path}/data/train/feats.scp")
    vads = random_access(f"scp:{tmp_path}/data/train/vad.scp")
    return {u: select_voiced_frames(apply_cmvn_sliding(feats[u], 300, 100, center=True), vads[u]) for u in UTTS}


def _check_output(tmp_path):
    out = tmp_path / "data" / "train_cmn"
    got = dict(read_matrices(f"scp:{out}/feats.scp"))
    want = _expected(tmp_path)
    assert sorted(got) == sorted(want)
    for u in want:
        np.testing.assert_allclose(got[u], want[u], atol=1e-5)
    frames = dict(line.split() for line in (out / "utt2num_frames").read_text().splitlines())
    assert {u: int(n) for u, n in frames.items()} == {u: len(w) for u, w in want.items()}
    leftovers = [p.name for p in (tmp_path / "exp").rglob(".*.tmp")] + [p.name for p in tmp_path.glob("data/*.tmp*")]
    assert leftovers == []


def test_killed_process_in_a_pipeline_job_then_rerun_completes(setup, repo):
    tmp_path, env, step = setup
    res = subprocess.run(step, cwd=repo, env=dict(env, KILL_MARK=str(tmp_path / "killed")), capture_output=True,
                         text=True, timeout=300)
    assert (tmp_path / "killed").exists(), res.stdout + res.stderr
    # The job whose CMN died fails, although the rest of its pipe exited 0 with two utterances.
    assert res.returncode != 0, res.stdout + res.stderr
    assert "create_xvector_feats_train.2.log" in res.stderr
    exp = tmp_path / "exp" / "train_cmn"
    assert (exp / "xvector_feats_train.1.scp").exists() and not (exp / "xvector_feats_train.2.scp").exists()
    assert not (exp / "log" / "utt2num_frames.2").exists()
    assert not (tmp_path / "data" / "train_cmn").exists()
    res = subprocess.run(step, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "running 1 of 2 jobs (1 finished in an earlier run)" in res.stdout
    _check_output(tmp_path)


def _wait_for(predicate, what, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_concurrent_runs_on_the_same_dirs(setup, repo):
    tmp_path, env, step = setup
    go = tmp_path / "go"
    exp = tmp_path / "exp" / "train_cmn"
    out_a, out_b = tmp_path / "a.out", tmp_path / "b.out"
    with open(out_a, "w") as fa, open(out_b, "w") as fb:
        a = subprocess.Popen(step, cwd=repo, env=dict(env, HOLD_UNTIL=str(go)), stdout=fa, stderr=subprocess.STDOUT,
                             text=True)
        # Run A's second job is writing (its temporary archive exists) and held open.
        _wait_for(lambda: list(exp.glob(".xvector_feats_train.2.ark.*.tmp")), "run A's job 2 to start writing")
        b = subprocess.Popen(step, cwd=repo, env=env, stdout=fb, stderr=subprocess.STDOUT, text=True)
        # B either waits for A's lock, or (without one) gets as far as starting its own jobs.
        _wait_for(lambda: any(w in out_b.read_text() for w in ("waiting", "running", "joining")) or b.poll() is not None,
                  "run B to wait or start")
        go.touch()
        ra, rb = a.wait(timeout=300), b.wait(timeout=300)
    assert ra == 0, out_a.read_text()
    assert rb == 0, out_b.read_text()
    assert "in use by another run" in out_b.read_text() and "waiting for it to end" in out_b.read_text()
    assert "all 2 jobs finished before" in out_b.read_text()   # B reused A's work
    _check_output(tmp_path)


def test_lock_held_elsewhere_stops_with_sid_lock_wait_false(setup, repo):
    tmp_path, env, step = setup
    lock = tmp_path / "exp" / ".train_cmn.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("the test (pid 1)")
        f.flush()
        res = subprocess.run(step, cwd=repo, env=dict(env, SID_LOCK_WAIT="false"), capture_output=True, text=True,
                             timeout=120)
    assert res.returncode == 1
    assert f"{tmp_path}/exp/train_cmn is in use by another run (the test (pid 1)); stopping" in res.stderr
    assert not (tmp_path / "data" / "train_cmn").exists()


def test_recipe_stops_while_another_run_holds_its_data_dir(tmp_path, sid_env, repo):
    lock = tmp_path / ".data.lock"
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("run A")
        f.flush()
        res = subprocess.run(["bash", "egs/speechocean762/run.sh", "--data", str(tmp_path / "data"),
                              "--exp", str(tmp_path / "exp")], cwd=repo, env=dict(sid_env, SID_LOCK_WAIT="false"),
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{tmp_path}/data is in use by another run (run A); stopping" in res.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()

"""Training on real features (speechocean762): learning, kill -9 resumption equal to an
uninterrupted run, and 2-process torchrun (gloo) with disjoint shards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sid import provenance

sys.path.insert(0, str(Path(__file__).parent))
from training_data import corpus_features, kill_after_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feats(corpus, tmp_path_factory):
    return corpus_features(corpus, tmp_path_factory.mktemp("train_feats"))


@pytest.fixture(scope="module")
def tiny_config(repo, tmp_path_factory):
    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["training"]["epochs"] = 4
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train_cmd(cfg: Path, data: Path, exp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={cfg}", "--progress=false",
            "--tensorboard=false", *extra, str(data), str(exp)]


def _env(sid_env):
    env = dict(sid_env)
    env["OMP_NUM_THREADS"] = "1"   # same thread count in every run: bit-identical CPU arithmetic
    return env


def _epoch_stats(log: str) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in re.findall(r"Epoch \d+: loss ([\d.]+), accuracy ([\d.]+)", log)]


@pytest.fixture(scope="module")
def uninterrupted(feats, tiny_config, tmp_path_factory, repo):
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "LC_ALL": "C"}
    exp = tmp_path_factory.mktemp("exp") / "full"
    res = subprocess.run(_train_cmd(tiny_config, feats / "train", exp, "--num-workers=0", "--valid-utts=0"),
                         env=env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return exp


def test_training_learns(uninterrupted):
    stats = _epoch_stats((uninterrupted / "log" / "train.log").read_text())
    assert len(stats) == 4
    losses, accs = [s[0] for s in stats], [s[1] for s in stats]
    assert losses[-1] < 0.6 * losses[0], losses
    assert accs[-1] > 0.5 and accs[-1] > 5 * accs[0] / 2, accs      # chance is 1/20
    # What the training did, recorded for sid.bin.results_table.
    log = (uninterrupted / "log" / "train.log").read_text()
    record = json.loads((uninterrupted / "training.json").read_text())
    assert record["steps"] == 4 * int(re.search(r"(\d+) steps per epoch", log)[1])
    assert f"{record['parameters']} parameters" in log and record["loss"] == "softmax"
    assert [round(x, 4) for x in record["epoch_losses"]] == losses
    assert f"Loss at step 0: {record['first_loss']:.6f}" in log
    assert record["cpu_seconds"] > 0 and record["num_threads"] == 1
    spk2id = (uninterrupted / "spk2id").read_text().split("\n")
    assert len([s for s in spk2id if s]) == 20
    final = torch.load(uninterrupted / "final.pt", weights_only=True)
    assert final["averaged_epochs"] == [3, 4]
    e3 = torch.load(uninterrupted / "models" / "epoch_3.pt", weights_only=True)["model"]
    e4 = torch.load(uninterrupted / "models" / "epoch_4.pt", weights_only=True)["model"]
    key = "segment6.weight"
    assert torch.allclose(final["model"][key], (e3[key] + e4[key]) / 2, atol=1e-6)


def test_rerun_after_finish_is_a_noop(uninterrupted, tiny_config, feats, sid_env, repo):
    before = (uninterrupted / "final.pt").read_bytes()
    res = subprocess.run(_train_cmd(tiny_config, feats / "train", uninterrupted, "--num-workers=0"),
                         env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Epoch" not in res.stderr.split("Resuming")[-1]
    final = torch.load(uninterrupted / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(final[k], v) for k, v in torch.load(__import__("io").BytesIO(before), weights_only=True)["model"].items())


def test_kill9_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, feats, tiny_config, sid_env, repo, tmp_path):
    exp = tmp_path / "killed"
    cmd = _train_cmd(tiny_config, feats / "train", exp, "--num-workers=1", "--checkpoint-steps=4")
    kill_after_checkpoint(cmd, _env(sid_env), repo, exp, epoch=2)

    res = subprocess.run(cmd, env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"Resuming from .*last.pt: epoch \d, batch \d+", res.stderr)

    ref = torch.load(uninterrupted / "final.pt", weights_only=True)
    got = torch.load(exp / "final.pt", weights_only=True)
    for part in ("model", "head"):
        for k, v in ref[part].items():
            assert torch.allclose(got[part][k].float(), v.float(), rtol=1e-5, atol=1e-6), f"{part}.{k} differs"
    # The record spans the resume: the killed run's steps, losses and CPU time count too.
    ref_rec, got_rec = (json.loads((d / "training.json").read_text()) for d in (uninterrupted, exp))
    assert got_rec["steps"] == ref_rec["steps"] and got_rec["first_loss"] == pytest.approx(ref_rec["first_loss"])
    assert got_rec["epoch_losses"] == pytest.approx(ref_rec["epoch_losses"], rel=1e-5)
    assert got_rec["cpu_seconds"] > 0
    assert got_rec["commit"] == provenance.code_commit()   # the code that finished it


def test_torchrun_two_ranks_disjoint_shards(feats, tiny_config, sid_env, repo, tmp_path):
    exp = tmp_path / "ddp"
    cfg = yaml.safe_load(tiny_config.read_text())
    cfg["training"]["epochs"] = 2
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(["bash", "steps/train_xvector.sh", "--ngpu", "2", "--model-config", str(cfg_path),
                          "--num-workers", "1", "--train-opts", "--write-chunk-lists=true --progress=false",
                          str(feats / "train"), str(exp)],
                         env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    steps = None
    for epoch in (1, 2):
        shards = [[line.split() for line in (exp / "log" / "chunks" / f"epoch{epoch}.rank{r}.txt").read_text().splitlines()]
                  for r in (0, 1)]
        ids = [{c[0] for c in shard} for shard in shards]
        batches = [{c[0].split("-")[0] for c in shard} for shard in shards]
        assert ids[0] and ids[1] and not ids[0] & ids[1], "ranks share chunks"
        assert not batches[0] & batches[1] and len(batches[0]) == len(batches[1])
        # Together the ranks cover the epoch: every utterance at most chunks_per_utt (2) times.
        counts = np.unique([c[1] for shard in shards for c in shard], return_counts=True)[1]
        assert counts.max() <= 2 and counts.sum() == len(ids[0]) + len(ids[1])
        steps = len(batches[0])
    assert f"{steps} steps per epoch" in (exp / "log" / "train.log").read_text()
    assert (exp / "final.pt").exists()
    stats = _epoch_stats((exp / "log" / "train.log").read_text())
    assert len(stats) == 2 and stats[1][0] < stats[0][0]


def test_large_margin_fine_tuning_starts_from_the_model(feats, repo, sid_env, tmp_path):
    from sid.config import load_config
    from sid.losses import build_head
    from sid.models import build_model
    from sid.train.data import ChunkDataset, plan_epoch, read_training_set

    cfg = yaml.safe_load((repo / "conf" / "xvector_small.yaml").read_text())
    cfg["loss"] = {"type": "aam_softmax", "margin": 0.2, "scale": 30.0}
    cfg["training"].update(epochs=1, num_avg=1)
    src_cfg = tmp_path / "src.yaml"
    src_cfg.write_text(yaml.safe_dump(cfg))
    cfg["loss"]["margin"] = 0.5
    cfg["data"].update(min_frames=150, max_frames=150, batch_size=16)
    cfg["optim"].update(lr=1e-4, final_lr=2.5e-5, warmup_epochs=0)
    lm_cfg = tmp_path / "lm.yaml"
    lm_cfg.write_text(yaml.safe_dump(cfg))
    src, lm = tmp_path / "src", tmp_path / "lm"
    for c, exp, extra in ((src_cfg, src, []), (lm_cfg, lm, [f"--init-model={src / 'final.pt'}"])):
        r = subprocess.run(_train_cmd(c, feats / "train", exp, "--num-workers=0", *extra), env=_env(sid_env),
                           capture_output=True, text=True, cwd=repo, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    log = (lm / "log" / "train.log").read_text()
    assert f"Initialised model and head from {src / 'final.pt'}" in log
    loss0 = float(re.search(r"Loss at step 0: ([\d.]+) \(margin 0.500\)", log).group(1))
    # The source model's loss on the fine-tuning's first batch under the new margin.
    saved = load_config(lm / "config.yaml", recorded=True)
    torch.manual_seed(0)
    model = build_model(saved.model.to_dict())
    head = build_head(saved.loss, model.output_dim, saved.num_classes)
    state = torch.load(src / "final.pt", weights_only=True)
    model.load_state_dict(state["model"])
    head.load_state_dict(state["head"])
    data = read_training_set(feats / "train")
    ds = ChunkDataset(data, 777)
    ds.set_plan(0, plan_epoch(data, 777, 0, 16, 150, 150, saved.data.chunks_per_utt))
    x, y, _ = ds[0]
    model.train()
    expected, _ = head(model(x), y)
    assert loss0 == pytest.approx(float(expected.detach()), rel=1e-5)
    # Its own averaged model, different from the source.
    final = torch.load(lm / "final.pt", weights_only=True)
    assert final["averaged_epochs"] == [1]
    assert not torch.equal(final["model"]["segment6.weight"], state["model"]["segment6.weight"])

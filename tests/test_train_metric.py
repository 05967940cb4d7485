"""Metric-learning training on real features (speechocean762): every new config learns
(falling loss over a few steps), and a GE2E run with N x M batches killed with -9 and
resumed ends with the weights of an uninterrupted one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from training_data import corpus_features, kill_after_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow

CONFIGS = ["dvector_ge2e", "dvector_small", "resnetse34l_ap", "resnetse34v2_sp", "gru_embedder", "convgru_embedder"]


@pytest.fixture(scope="module")
def feats(corpus, tmp_path_factory):
    return corpus_features(corpus, tmp_path_factory.mktemp("train_feats"))


@pytest.fixture(scope="module")
def waveform_dir(corpus, feats, tmp_path_factory):
    """The same utterances as raw waveform rows (the conv_gru front-end), 3 s at most each."""
    from sid.data.audio import read_audio
    from sid.features.frontends import Waveform, frontend_features

    d = tmp_path_factory.mktemp("wave")
    utt2spk = dict(line.split() for line in (feats / "train" / "utt2spk").read_text().splitlines())
    wav = dict(line.split(maxsplit=1) for line in (corpus / "train" / "wav.scp").read_text().splitlines())
    rows = {u: frontend_features(Waveform(160), read_audio(str(corpus / wav[u]))[0][:48000]) for u in sorted(utt2spk)}
    kaldiio.save_ark(str(d / "feats.ark"), rows, scp=str(d / "feats.scp"))
    (d / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in sorted(rows)))
    (d / "utt2num_frames").write_text("".join(f"{u} {rows[u].shape[0]}\n" for u in sorted(rows)))
    return d


@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_with_falling_loss(name, repo, feats, waveform_dir):
    from sid.config import load_config
    from sid.losses import build_head
    from sid.models import build_model
    from sid.train.data import ChunkDataset, plan_epoch_balanced, read_training_set
    from sid.train.trainer import _build_optimizer

    cfg = load_config(repo / "conf" / f"{name}.yaml")
    data_dir = waveform_dir if cfg.model.type == "conv_gru" else feats / "train"
    data = read_training_set(data_dir)
    model_cfg = cfg.model.to_dict()
    if model_cfg["type"] != "conv_gru":
        model_cfg["feat_dim"] = 30                      # the shared test features
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model(model_cfg)
    m = cfg.data.utts_per_speaker
    head = build_head(cfg.loss, model.output_dim, len(data.spk2id), m)
    net = torch.nn.ModuleDict({"model": model, "head": head})
    opt = _build_optimizer(net.parameters(), cfg.optim)
    # The config's N x M sampler with 3 speakers per batch and 0.3 s chunks; three batches, four passes,
    # the config's optimiser and gradient clipping.
    ds = ChunkDataset(data, seed=1)
    ds.set_plan(0, plan_epoch_balanced(data, 1, 0, 3, m, 30, 30)[:3])
    batches = [ds[i][:2] for i in range(3)]
    clip = cfg.optim.grad_clip
    losses = []
    for _ in range(4):
        for x, y in batches:
            loss = head(model(x), y)[0]
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.97 * np.mean(losses[:3]), losses


def _cmd(cfg: Path, data: Path, exp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={cfg}", "--progress=false",
            "--tensorboard=false", *extra, str(data), str(exp)]


@pytest.fixture(scope="module")
def ge2e_config(repo, tmp_path_factory):
    cfg = yaml.safe_load((repo / "conf" / "dvector_small.yaml").read_text())
    cfg["model"].update(hidden=32, embed_dim=32)
    cfg["model"]["feat_dim"] = 30                      # the shared test features
    cfg["data"].update(speakers_per_batch=5, utts_per_speaker=2, min_frames=40, max_frames=60)
    cfg["training"]["epochs"] = 3
    path = tmp_path_factory.mktemp("cfg") / "ge2e.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_ge2e_kill9_mid_epoch_then_resume_equals_uninterrupted(ge2e_config, feats, sid_env, repo, tmp_path):
    env = {**sid_env, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    res = subprocess.run(_cmd(ge2e_config, feats / "train", full, "--num-workers=0"), env=env, capture_output=True,
                         text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    text = (full / "log" / "train.log").read_text()
    assert "20 steps per epoch" in text           # 20 speakers x 10 utterances = 100 pairs = 20 batches of 5 x 2
    stats = [(float(a), float(b)) for a, b in re.findall(r"Epoch \d+: loss ([\d.]+), accuracy ([\d.]+)", text)]
    assert len(stats) == 3 and stats[-1][0] < stats[0][0], stats

    exp = tmp_path / "killed"
    cmd = _cmd(ge2e_config, feats / "train", exp, "--num-workers=1", "--checkpoint-steps=3")
    kill_after_checkpoint(cmd, env, repo, exp, epoch=2, timeout=180)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(r"Resuming from .*last.pt: epoch 2, batch \d+", res.stderr)
    ref = torch.load(full / "final.pt", weights_only=True)
    got = torch.load(exp / "final.pt", weights_only=True)
    for part in ("model", "head"):
        for k, v in ref[part].items():
            assert torch.allclose(got[part][k].float(), v.float(), rtol=1e-5, atol=1e-6), f"{part}.{k} differs"

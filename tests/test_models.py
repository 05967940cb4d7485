"""Model builders: published parameter counts, shapes, compute figures, model_info."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sid.config import LossConfig, load_config
from sid.errors import SidError
from sid.losses import build_head
from sid.models import build_model, count_parameters
from sid.models.complexity import count_macs, macs_per_second

PUBLISHED = {  # parameters without the output layer
    "xvector_kaldi": 4.5e6,   # Snyder et al. 2018 / Kaldi run_xvector_1a, 30-dim MFCC
    "ecapa_c512": 6.2e6,      # Desplanques et al. 2020
    "ecapa_c1024": 14.7e6,
    "resnet34": 6.6e6,        # WeSpeaker ResNet34, 32 base channels, 80-dim fbank
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(repo, name):
    model = build_model(load_config(repo / "conf" / f"{name}.yaml").model)
    n = count_parameters(model)
    assert abs(n - PUBLISHED[name]) / PUBLISHED[name] < 0.02, f"{name}: {n}"


# The other schools' models: exact counts of the published architectures (without, with the
# loss's parameters for 5,994 VoxCeleb2 speakers: GE2E/prototypical w and b, a softmax layer).
EXACT = {
    "dvector_small": (1_423_616, 1_423_618),       # Resemblyzer's encoder
    "dvector_ge2e": (4_663_296, 4_663_298),        # LSTM 3 x 768, projection 256
    "resnetse34l_ap": (1_437_078, 1_437_080),      # voxceleb_trainer ResNetSE34L + AP
    "resnetse34v2_sp": (8_028_492, 11_103_416),    # voxceleb_trainer ResNetSE34V2 + softmax + AP
    "gru_embedder": (9_671_200, 9_671_202),
    "convgru_embedder": (11_402_048, 11_402_050),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_parameter_count_exact(repo, name):
    cfg = load_config(repo / "conf" / f"{name}.yaml")
    model = build_model(cfg.model)
    head = build_head(cfg.loss, model.output_dim, 5994, cfg.data.utts_per_speaker)
    assert (count_parameters(model), count_parameters(model) + count_parameters(head)) == EXACT[name]
    x = torch.randn(2, 20, model.feat_dim)
    emb = model.eval().embed(x)
    assert emb.shape == (2, model.embed_dim)
    if cfg.model.type != "resnet_se":   # the recurrent embedders are unit length by construction
        assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)


def test_model_info_prints_voxceleb_trainer_counts(repo, sid_env):
    out = subprocess.run([sys.executable, "-m", "sid.bin.model_info", "--model-config=conf/resnetse34l_ap.yaml"],
                         cwd=repo, env=sid_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "parameters without output     1,437,078" in out.stdout
    assert "parameters with output        1,437,080" in out.stdout


def test_xvector_layers_as_kaldi():
    model = build_model({"type": "xvector", "feat_dim": 30})
    convs = [m for m in model.frames.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(c.kernel_size[0], c.dilation[0], c.out_channels) for c in convs] == \
        [(5, 1, 512), (3, 2, 512), (3, 3, 512), (1, 1, 512), (1, 1, 1500)]
    # Kaldi's batchnorm has no learnable scale/offset: all parameters are affine layers.
    assert count_parameters(model) == (150 * 512 + 512) + 2 * (1536 * 512 + 512) + (512 * 512 + 512) \
        + (512 * 1500 + 1500) + (3000 * 512 + 512) + (512 * 512 + 512)
    model.eval()
    x = torch.randn(3, 15, 30)
    assert model.embed(x).shape == (3, 512)
    with pytest.raises(RuntimeError):
        model.embed(torch.randn(1, 14, 30))  # the TDNN's context is 15 frames


def test_xvector_embedding_is_segment6_affine_output():
    torch.manual_seed(0)
    model = build_model({"type": "xvector", "feat_dim": 20, "channels": 32, "stats_channels": 64,
                         "embed_dim": 16, "hidden_dim": 16}).eval()
    x = torch.randn(2, 50, 20)
    frames = model.frames(x.transpose(1, 2))
    stats = torch.cat([frames.mean(-1), frames.std(-1, unbiased=False)], -1)
    assert torch.allclose(model.embed(x), model.segment6(stats), atol=1e-5)
    assert model(x).shape == (2, 16)


@pytest.mark.parametrize("cfg,dim", [
    ({"type": "ecapa_tdnn", "channels": 64, "mfa_channels": 96, "embed_dim": 24}, 24),
    ({"type": "resnet", "base_channels": 8, "embed_dim": 32}, 32),
])
def test_forward_shapes_and_length_independence(cfg, dim):
    model = build_model({**cfg, "feat_dim": 40}).eval()
    for frames in (37, 200):
        assert model.embed(torch.randn(2, frames, 40)).shape == (2, dim)
    # Chunks of one utterance batched together give the same embeddings as one by one.
    x = torch.randn(3, 80, 40)
    batched = model.embed(x)
    single = torch.cat([model.embed(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-4)


def test_macs_per_second_xvector():
    model = build_model({"type": "xvector", "feat_dim": 30})
    per_frame = 150 * 512 + 2 * 1536 * 512 + 512 * 512 + 512 * 1500
    per_sec, _ = macs_per_second(model, 30)
    assert per_sec == pytest.approx(100 * per_frame)
    # Unpadded layers: 115 input frames leave 111, 107, 101, 101, 101 output frames.
    assert count_macs(model, 115, 30) == 111 * 150 * 512 + 107 * 1536 * 512 + 101 * 1536 * 512 \
        + 101 * 512 * 512 + 101 * 512 * 1500 + 3000 * 512 + 512 * 512


def test_bad_configs(tmp_path):
    with pytest.raises(SidError, match="'lstm' is not a model; allowed: xvector"):
        build_model({"type": "lstm"})
    with pytest.raises(SidError, match="unknown key 'model.nonsense'"):
        build_model({"type": "xvector", "nonsense": 1})
    with pytest.raises(SidError, match="not divisible"):
        build_model({"type": "ecapa_tdnn", "channels": 100, "scale": 8})
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {}\n")
    with pytest.raises(SidError, match="model"):
        load_config(bad)


def test_model_info_cli(repo, sid_env):
    out = subprocess.run([sys.executable, "-m", "sid.bin.model_info", "--model-config=conf/ecapa_c512.yaml",
                          "--num-classes=1000"], cwd=repo, env=sid_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "parameters without output     6,191,360" in out.stdout
    # AAM head: a 1000 x 192 weight matrix, no bias.
    assert f"parameters with output        {6191360 + 192000:,}" in out.stdout
    assert "multiply-adds per second" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "sid.bin.model_info"], cwd=repo, env=sid_env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "--model-config" in bad.stderr


@pytest.mark.parametrize("cfg", [
    {"type": "xvector", "channels": 16, "stats_channels": 24, "embed_dim": 8, "hidden_dim": 8},
    {"type": "ecapa_tdnn", "channels": 32, "mfa_channels": 48, "embed_dim": 8},
    {"type": "resnet", "base_channels": 4, "embed_dim": 8},
])
def test_mixed_precision_training_step(cfg):
    """The bf16 autocast path the trainer takes on a GPU, exercised on CPU."""
    torch.manual_seed(0)
    model = build_model({**cfg, "feat_dim": 24})
    head = build_head(LossConfig("aam_softmax", margin=0.2, scale=30.0), model.output_dim, 6)
    x, y = torch.randn(4, 60, 24), torch.tensor([0, 1, 2, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and logits.dtype == torch.float32
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

"""Fine-tuning on a new domain (steps/train_xvector.sh --init-model <exp>): the model of any exp
dir (here one without training state, as sid.bin.import_model writes) on other speakers gets a
new head, its architecture from the exp; --freeze keeps blocks fixed (batch norm included) for
--freeze-epochs epochs, then they train; L2-SP pulls towards the initial weights, distillation
holds the embeddings near those the initial weights give, and final.pt interpolates them with
the trained ones (WiSE-FT), all from models/init.pt, which a run killed
during the frozen epoch reads back when it resumes exactly; a config, checkpoint or init.pt of
another architecture fails naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from training_data import corpus_features, kill_after_checkpoint, model_with_moved_norms  # noqa: E402

from sid import provenance  # noqa: E402
from sid.config import parse_config  # noqa: E402
from sid.errors import SidError  # noqa: E402
from sid.losses import build_head  # noqa: E402
from sid.models import build_model  # noqa: E402
from sid.train import checkpoint  # noqa: E402

MODEL = {"type": "xvector", "feat_dim": 30, "channels": 32, "stats_channels": 64, "embed_dim": 16, "hidden_dim": 16}
FROZEN = ("frames.0", "frames.1")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feats(corpus, tmp_path_factory):
    return corpus_features(corpus, tmp_path_factory.mktemp("finetune_feats"))


@pytest.fixture(scope="module")
def source(feats, tmp_path_factory):
    """An exp dir with config.yaml, final.pt (model and a 7-class head) and spk2id of other speakers."""
    exp = tmp_path_factory.mktemp("source") / "exp"
    exp.mkdir()
    cfg = parse_config({"model": MODEL})
    cfg.features = provenance.training_record(feats / "train")
    cfg.num_classes = 7
    cfg.dump(exp / "config.yaml")
    (exp / "spk2id").write_text("".join(f"other{i} {i}\n" for i in range(7)))
    model = model_with_moved_norms(cfg.model, 3)
    head = build_head(cfg.loss, model.output_dim, 7)
    checkpoint.save_atomic({"model": model.state_dict(), "head": head.state_dict()}, exp / "final.pt")
    return exp


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """Training settings only: the model comes from the exp fine-tuned."""
    path = tmp_path_factory.mktemp("cfg") / "finetune.yaml"
    path.write_text(yaml.safe_dump({
        "loss": {"type": "softmax"},
        "data": {"batch_size": 16, "min_frames": 100, "max_frames": 100},
        "optim": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
        "training": {"epochs": 2, "num_avg": 1, "l2sp": 1.0, "distill": 1.0, "interpolate_init": 0.75}}))
    return path


def _cmd(cfg: Path, data: Path, exp: Path, source: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={cfg}", f"--init-model={source}",
            f"--freeze={','.join(FROZEN)}", "--freeze-epochs=1", "--progress=false", "--tensorboard=false",
            "--num-workers=0", *extra, str(data), str(exp)]


def _env(sid_env):
    return {**sid_env, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def finetuned(feats, source, config, repo, tmp_path_factory):
    import os

    exp = tmp_path_factory.mktemp("ft") / "exp"
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "LC_ALL": "C"}
    res = subprocess.run(_cmd(config, feats / "train", exp, source), env=env, capture_output=True, text=True,
                         cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return exp


def _frozen(name: str) -> bool:
    return any(name.startswith(p + ".") for p in FROZEN)


def test_new_head_and_the_source_architecture(finetuned, source):
    log = (finetuned / "log" / "train.log").read_text()
    assert f"Initialised model (new 20-class softmax head: other speakers) from {source / 'final.pt'}" in log
    saved = yaml.safe_load((finetuned / "config.yaml").read_text())
    assert saved["model"] == yaml.safe_load((source / "config.yaml").read_text())["model"]
    assert saved["num_classes"] == 20 and saved["training"]["freeze"] == list(FROZEN)
    head = torch.load(finetuned / "final.pt", weights_only=True)["head"]
    assert next(iter(head.values())).shape[0] == 20


def test_frozen_blocks_fixed_then_trained(finetuned, source):
    src = torch.load(source / "final.pt", weights_only=True)["model"]
    after1 = torch.load(finetuned / "models" / "epoch_1.pt", weights_only=True)["model"]
    after2 = torch.load(finetuned / "models" / "epoch_2.pt", weights_only=True)["model"]
    frozen = [k for k in src if _frozen(k)]
    assert any("running_mean" in k for k in frozen) and any(k.endswith("weight") for k in frozen)
    for k in frozen:   # parameters and batch-norm statistics alike
        assert torch.equal(after1[k], src[k]), f"{k} changed while frozen"
    for k in src:
        if not _frozen(k) and torch.is_floating_point(src[k]):
            assert not torch.equal(after1[k], src[k]), f"{k} did not train"
    assert not torch.equal(after2["frames.0.conv.weight"], src["frames.0.conv.weight"])
    assert "frames.0, frames.1 fixed for the first 1 epoch(s)" in (finetuned / "log" / "train.log").read_text()
    # L2-SP's anchor: the model's weights as --init-model gave them (not the new head).
    init = torch.load(finetuned / "models" / "init.pt", weights_only=True)["init"]
    assert init and all(k.startswith("model.") for k in init)
    for k, v in init.items():
        assert torch.equal(v, src[k[len("model."):]])


def test_final_interpolates_init_and_trained_weights(finetuned, source):
    src = torch.load(source / "final.pt", weights_only=True)["model"]
    trained = torch.load(finetuned / "models" / "epoch_2.pt", weights_only=True)
    final = torch.load(finetuned / "final.pt", weights_only=True)
    assert final["interpolate_init"] == 0.75
    for k, v in trained["model"].items():
        if torch.is_floating_point(v):
            want = (0.25 * src[k].double() + 0.75 * v.double()).float()
            assert torch.allclose(final["model"][k], want, rtol=0, atol=1e-7), k
            if not torch.equal(src[k], v):
                assert not torch.equal(final["model"][k], v), k
        else:
            assert torch.equal(final["model"][k], v), k   # batch-norm counters: the trained ones
    for k, v in trained["head"].items():   # a new head has no initial weights: as trained
        assert torch.equal(final["head"][k], v), k
    assert yaml.safe_load((finetuned / "config.yaml").read_text())["training"]["interpolate_init"] == 0.75
    assert json.loads((finetuned / "training.json").read_text())["interpolate_init"] == 0.75
    assert "0.25 x the --init-model weights" in (finetuned / "log" / "train.log").read_text()


def test_distillation_holds_the_embeddings_near_the_sources(feats, source, config, repo, sid_env, tmp_path):
    """training.distill: the same fine-tuning with a strong pull gives embeddings nearer (in cosine)
    to those the source model gives than without; the log says what it pulls towards."""
    src = parse_config({"model": MODEL})
    x = torch.randn(6, 120, MODEL["feat_dim"], generator=torch.Generator().manual_seed(1))

    def embed(final: Path) -> torch.Tensor:
        model = build_model(src.model)
        model.load_state_dict(torch.load(final, weights_only=True)["model"])
        with torch.no_grad():
            return model.eval()(x)

    near = {}
    for weight in (0.0, 10.0):
        cfg = yaml.safe_load(config.read_text())
        cfg["training"] = {**cfg["training"], "l2sp": 0.0, "distill": weight, "interpolate_init": 1.0}
        path = tmp_path / f"distill{weight:g}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        exp = tmp_path / f"exp{weight:g}"
        res = subprocess.run(_cmd(path, feats / "train", exp, source), env=_env(sid_env), capture_output=True,
                             text=True, cwd=repo, timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        near[weight] = float(torch.nn.functional.cosine_similarity(embed(exp / "final.pt"),
                                                                   embed(source / "final.pt")).mean())
        assert f"distillation {weight:g}" in (exp / "log" / "train.log").read_text()
    assert near[10.0] > near[0.0] + 0.2, near


def test_recipe_interpolation_of_a_finished_exp_is_the_trainers(finetuned, repo, sid_env, tmp_path):
    """egs/speechocean762/local/interpolate_finetuned.py, which chose the recipe's interpolate_init
    without training once per value, writes what the trainer wrote."""
    res = subprocess.run([sys.executable, str(repo / "egs" / "speechocean762" / "local" / "interpolate_finetuned.py"),
                          str(finetuned), "0.75", str(tmp_path / "new")], env=_env(sid_env), capture_output=True,
                         text=True, cwd=repo, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    ref, got = (torch.load(p / "final.pt", weights_only=True) for p in (finetuned, tmp_path / "new"))
    for part in ("model", "head"):
        for k, v in ref[part].items():
            assert torch.equal(got[part][k], v), f"{part}.{k} differs"
    assert yaml.safe_load((tmp_path / "new" / "config.yaml").read_text()) == yaml.safe_load((finetuned / "config.yaml").read_text())
    # --num-avg 2: the mean of both epochs, then interpolated, as training.num_avg: 2 would have.
    res = subprocess.run([sys.executable, str(repo / "egs" / "speechocean762" / "local" / "interpolate_finetuned.py"),
                          "--num-avg=2", str(finetuned), "0.5", str(tmp_path / "avg")], env=_env(sid_env),
                         capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    want = checkpoint.interpolate(torch.load(finetuned / "models" / "init.pt", weights_only=True)["init"],
                                  checkpoint.average_epochs(finetuned / "models", [1, 2]), 0.5, "init.pt")
    got = torch.load(tmp_path / "avg" / "final.pt", weights_only=True)
    assert all(torch.equal(got["model"][k], v) for k, v in want["model"].items())
    assert yaml.safe_load((tmp_path / "avg" / "config.yaml").read_text())["training"]["num_avg"] == 2


def test_interpolate_refuses_weights_of_another_architecture():
    init = {"model.a": torch.zeros(3), "model.n": torch.tensor(4)}
    final = {"model": {"a": torch.ones(3), "n": torch.tensor(9)}, "head": {"w": torch.ones(1)}}
    out = checkpoint.interpolate(init, final, 0.5, "init.pt")
    assert torch.equal(out["model"]["a"], torch.full((3,), 0.5)) and int(out["model"]["n"]) == 9
    assert torch.equal(final["model"]["a"], torch.ones(3))   # the input is left as it was
    with pytest.raises(SidError, match=r"init.pt: weight 'model.a' \[3\] is of shape \[2\]"):
        checkpoint.interpolate(init, {**final, "model": {**final["model"], "a": torch.ones(2)}}, 0.5, "init.pt")
    with pytest.raises(SidError, match=r"weight 'head.v' \[1\] is absent"):
        checkpoint.interpolate({"head.v": torch.ones(1)}, final, 0.5, "init.pt")


def test_killed_while_frozen_resumes_exactly(finetuned, feats, source, config, repo, sid_env, tmp_path):
    exp = tmp_path / "killed"
    cmd = _cmd(config, feats / "train", exp, source, "--checkpoint-steps=2")
    kill_after_checkpoint(cmd, _env(sid_env), repo, exp, epoch=1)
    res = subprocess.run(cmd, env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Resuming from" in res.stderr
    ref = torch.load(finetuned / "final.pt", weights_only=True)
    got = torch.load(exp / "final.pt", weights_only=True)
    for part in ("model", "head"):
        for k, v in ref[part].items():
            assert torch.allclose(got[part][k].float(), v.float(), rtol=1e-5, atol=1e-6), f"{part}.{k} differs"
    assert got["interpolate_init"] == 0.75


def test_resumed_with_init_weights_of_another_architecture_fails(feats, source, config, repo, sid_env, tmp_path):
    exp = tmp_path / "exp"
    cmd = _cmd(config, feats / "train", exp, source, "--checkpoint-steps=2")
    kill_after_checkpoint(cmd, _env(sid_env), repo, exp, epoch=1)
    init = torch.load(exp / "models" / "init.pt", weights_only=True)
    init["init"]["model.frames.2.conv.weight"] = init["init"]["model.frames.2.conv.weight"][:, :-1]
    checkpoint.save_atomic(init, exp / "models" / "init.pt")
    res = subprocess.run(cmd, env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "init.pt: weight 'model.frames.2.conv.weight'" in res.stderr and "another architecture" in res.stderr


def test_other_architecture_fails_naming_the_key(feats, source, config, repo, sid_env, tmp_path):
    cfg = yaml.safe_load(config.read_text())
    cfg["model"] = {**MODEL, "channels": 48}
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(_cmd(wrong, feats / "train", tmp_path / "a", source), env=_env(sid_env),
                         capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 1 and "model.channels is 48" in res.stderr and "Traceback" not in res.stderr

    # A checkpoint whose weights are not those its config.yaml describes.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.yaml").write_text((source / "config.yaml").read_text())
    state = torch.load(source / "final.pt", weights_only=True)
    state["model"]["frames.2.conv.weight"] = state["model"]["frames.2.conv.weight"][:, :-1]
    checkpoint.save_atomic(state, bad / "final.pt")
    res = subprocess.run(_cmd(config, feats / "train", tmp_path / "b", bad), env=_env(sid_env),
                         capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 1 and "'frames.2.conv.weight' has shape" in res.stderr

    res = subprocess.run(_cmd(config, feats / "train", tmp_path / "c", source, "--freeze=tdnn9"),
                         env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=120)
    assert res.returncode == 1 and "'tdnn9' names no parameters" in res.stderr and "frames" in res.stderr

    # L2-SP, distillation and WiSE-FT without a model to start from have nothing to pull towards or mix in.
    for key, value in (("l2sp", 1.0), ("distill", 1.0), ("interpolate_init", 0.75)):
        cfg = yaml.safe_load(config.read_text())
        cfg["training"] = {**cfg["training"], "l2sp": 0.0, "distill": 0.0, "interpolate_init": 1.0, key: value}
        scratch = tmp_path / "scratch.yaml"
        scratch.write_text(yaml.safe_dump({**cfg, "model": MODEL}))
        cmd = [c for c in _cmd(scratch, feats / "train", tmp_path / f"d_{key}", source) if not c.startswith("--init-model")]
        res = subprocess.run(cmd, env=_env(sid_env), capture_output=True, text=True, cwd=repo, timeout=120)
        assert res.returncode == 1 and f"training.{key} ({value}) needs the weights of --init-model" in res.stderr


@pytest.mark.parametrize("value", ["true", "scratch"])
def test_recipe_finetune_option_needs_pretrained(repo, sid_env, tmp_path, corpus, value):
    res = subprocess.run([str(repo / "egs" / "speechocean762" / "run.sh"), "--corpus", str(corpus), "--finetune", value,
                          "--exp", str(tmp_path / "exp"), "--data", str(tmp_path / "data")],
                         env=sid_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "--finetune needs --pretrained" in res.stderr
    assert not (tmp_path / "data" / "train").exists()

"""The training-config schema (sid.config): every shipped config loads, and each kind of
mistake is an error naming the file, the dotted key and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sid.config import TrainConfig, load_config, load_finetune_config, parse_config
from sid.errors import SidError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(REPO.glob("conf/*.yaml")) + sorted(REPO.glob("egs/*/conf/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_loads_and_round_trips(path):
    raw = yaml.safe_load(path.read_text())
    if "model" in raw:
        cfg = load_config(path)
    else:   # a fine-tuning config: the model is the exp's (steps/train_xvector.sh --init-model)
        base = REPO / "conf" / "dvector_small.yaml"
        cfg = load_finetune_config(path, load_config(base), str(base))
    assert isinstance(cfg, TrainConfig)
    # Every value the file states is the value the code reads (no key silently dropped).
    full = cfg.to_dict()
    for section, values in raw.items():
        for key, value in values.items():
            got = full[section][key]
            assert got == value or (isinstance(value, dict) and all(got[k] == v for k, v in value.items())), \
                f"{section}.{key}"
    # What training writes into <exp>/config.yaml reads back as the same config.
    assert parse_config(yaml.safe_load(yaml.safe_dump(full)), recorded=True).to_dict() == full


def test_defaults_live_in_the_schema():
    cfg = parse_config({"model": {"type": "ecapa_tdnn"}})
    assert cfg.training.epochs == 10 and cfg.optim.lr == 0.1 and cfg.loss.type == "softmax"
    assert cfg.data.specaug is None and cfg.loss.margin_schedule is None
    # The model section's defaults are its constructor's, written in full into a record;
    # what was given stays apart (training takes an absent feat_dim from the data).
    assert cfg.model.args == {}
    assert "feat_dim" not in load_config(REPO / "conf" / "xvector_small.yaml").model.args
    assert cfg.model.to_dict()["channels"] == 512 and cfg.model.to_dict()["dilations"] == [2, 3, 4]
    # A present specaug section is on unless it says otherwise.
    cfg = parse_config({"model": {"type": "xvector"}, "data": {"specaug": {"prob": 1.0}}})
    assert cfg.data.specaug.enabled and cfg.data.specaug.prob == 1.0 and cfg.data.specaug.freq_width == 8
    # YAML 1.1 reads 5e-5 as a string; a float field takes it as the number it is.
    assert parse_config({"model": {"type": "xvector"}, "optim": {"final_lr": "5e-5"}}).optim.final_lr == 5e-5


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,message", [
    # a misspelt key: names it, suggests the right one, lists what is allowed
    ("model: {type: xvector}\ntraining: {epoch: 1}\n",
     "unknown key 'training.epoch' (did you mean 'epochs'?); allowed: epochs, num_avg"),
    # a wrong type
    ("model: {type: xvector}\noptim: {lr: fast}\n", "optim.lr: expected a number, got 'fast'"),
    ("model: {type: xvector}\ntraining: {epochs: 2.5}\n", "training.epochs: expected an integer, got 2.5"),
    ("model: {type: xvector}\noptim: {nesterov: 'yes'}\n", "optim.nesterov: expected true or false, got 'yes'"),
    ("model: {type: xvector}\noptim: {lr: .nan}\n", "optim.lr: expected a number"),
    # a misspelt section
    ("model: {type: xvector}\ntrainig: {epochs: 1}\n",
     "unknown section 'trainig' (did you mean 'training'?); allowed: model, loss, data, optim, training"),
    # a section that is not a mapping
    ("model: {type: xvector}\noptim: sgd\n", "optim: expected a mapping of type, lr,"),
    # a choice outside its set
    ("model: {type: xvector}\noptim: {type: lbfgs}\n", "optim.type: expected one of sgd, adam, adamw, got 'lbfgs'"),
    ("model: {type: xvector}\nloss: {type: arcface}\n", "loss.type: expected one of softmax, am_softmax, aam_softmax"),
    ("model: {type: xvector}\nloss: {type: aam_softmax, margin_schedule: {increase_type: step}}\n",
     "loss.margin_schedule.increase_type: expected one of exp, linear"),
    # nested sections are checked as deep as they go
    ("model: {type: xvector}\ndata: {specaug: {freq_mask: 2}}\n", "unknown key 'data.specaug.freq_mask'"),
    # a bound
    ("model: {type: xvector}\ndata: {batch_size: 0}\n", "data.batch_size: must be >= 1, got 0"),
    ("model: {type: xvector}\ntraining: {interpolate_init: 1.5}\n", "training.interpolate_init: must be <= 1, got 1.5"),
    # the model section is checked against the named model's constructor
    ("model: {type: xvector, channel: 64}\n", "unknown key 'model.channel' (did you mean 'channels'?); allowed: type, "
                                              "feat_dim, channels"),
    ("model: {type: ecapa_tdnn, dilations: 2}\n", "model.dilations: expected a list of an integer, got 2"),
    ("model: {type: resnet, num_blocks: [3, x]}\n", "model.num_blocks[1]: expected an integer, got 'x'"),
    ("model: {type: lstm}\n", "model.type: 'lstm' is not a model; allowed: xvector, ecapa_tdnn, resnet"),
    ("loss: {type: softmax}\n", "the 'model' section is required"),
    # what training records is not a setting
    ("model: {type: xvector}\nnum_classes: 5\n", "'num_classes' is recorded by training"),
    ("- model\n", "expected a mapping with sections model, loss"),
    ("model: {type: xvector\n", "invalid YAML"),
])
def test_config_mistakes_name_file_key_and_what_is_allowed(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SidError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") or str(err.value).startswith(f"cannot read config {path}")
    assert message in str(err.value)


def test_train_xvector_config_typo_is_a_clean_error(tmp_path, sid_env):
    """``epoch: 1`` used to train the default 10 epochs; ``lr: fast`` was a traceback."""
    for text, key in [("model: {type: xvector}\ntraining: {epoch: 1}\n", "training.epoch"),
                      ("model: {type: xvector}\noptim: {lr: fast}\n", "optim.lr")]:
        path = _write(tmp_path, text)
        res = subprocess.run([sys.executable, "-m", "sid.bin.train_xvector", f"--model-config={path}",
                              str(tmp_path / "data"), str(tmp_path / "exp")],
                             cwd=REPO, env=sid_env, capture_output=True, text=True)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert str(path) in res.stderr and key in res.stderr
        assert not (tmp_path / "exp").exists()


def test_model_info_reads_the_schema(tmp_path, sid_env):
    path = _write(tmp_path, "model: {type: xvector, feat_dim: 30}\nloss: {type: aam_softmax, scale: 'big'}\n")
    res = subprocess.run([sys.executable, "-m", "sid.bin.model_info", f"--model-config={path}"],
                         cwd=REPO, env=sid_env, capture_output=True, text=True)
    assert res.returncode == 1 and "loss.scale: expected a number, got 'big'" in res.stderr, res.stderr


@pytest.mark.parametrize("name", ["dvector_small", "dvector_ge2e", "gru_embedder", "convgru_embedder",
                                  "resnetse34l_ap", "resnetse34v2_sp"])
def test_recipe_budget_configs_build(name):
    """egs/speechocean762/conf/<family>_cpu.yaml (RESULTS.md's family table): valid, the model
    built reads its own front-end's dimension, and a metric loss gets N x M batches."""
    from sid.models import build_model

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "egs" / "speechocean762" / "conf" / f"{name}_cpu.yaml")
    fe = cfg.frontend
    model = build_model(cfg.model)
    assert model.feat_dim == (fe.frame_samples if fe.type == "waveform" else fe.num_mel_bins)
    assert cfg.data.sampler == "speaker_balanced" and cfg.data.utts_per_speaker >= 2

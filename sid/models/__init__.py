"""Speaker-embedding networks built from a YAML config.

A config's ``model`` section names the architecture and its arguments::

    model:
      type: ecapa_tdnn        # xvector | ecapa_tdnn | resnet | resnet_se | dvector | gru | conv_gru
      feat_dim: 80
      channels: 512

Every model takes features (batch, frames, feat_dim) and has ``embed(x)`` (the
speaker embedding, ``embed_dim``), ``forward(x)`` (what the loss head classifies,
``output_dim``), ``feat_dim`` and ``min_frames`` (the shortest input it accepts).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from torch import nn

from sid.errors import SidError
from sid.models.ecapa import ECAPATDNN
from sid.models.recurrent import ConvGRUEmbedder, DVector, GRUEmbedder
from sid.models.resnet import ResNet
from sid.models.resnet_se import ResNetSE
from sid.models.tdnn import XVector

MODELS = {"xvector": XVector, "ecapa_tdnn": ECAPATDNN, "resnet": ResNet, "resnet_se": ResNetSE, "dvector": DVector,
          "gru": GRUEmbedder, "conv_gru": ConvGRUEmbedder}


def load_config(path: str | Path) -> dict:
    """Read a model/training YAML; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
    except OSError as err:
        raise SidError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise SidError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise SidError(f"{path}: expected a mapping with a 'model' section")
    return cfg


def build_model(model_cfg: dict) -> nn.Module:
    cfg = dict(model_cfg)
    kind = cfg.pop("type", None)
    if kind not in MODELS:
        raise SidError(f"model type '{kind}' unknown; choose one of {', '.join(sorted(MODELS))}")
    if "dilations" in cfg:
        cfg["dilations"] = tuple(cfg["dilations"])
    for key in ("num_blocks", "strides"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    try:
        return MODELS[kind](**cfg)
    except TypeError as err:
        raise SidError(f"bad arguments for model '{kind}': {err}") from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

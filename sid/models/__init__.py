"""Speaker-embedding networks built from a YAML config.

A config's ``model`` section names the architecture and its constructor's arguments
(``sid.config`` validates it against the constructor, whose defaults are the only ones)::

    model:
      type: ecapa_tdnn        # xvector | ecapa_tdnn | resnet | resnet_se | dvector | gru | conv_gru
      feat_dim: 80
      channels: 512

Every model takes features (batch, frames, feat_dim) and has ``embed(x)`` (the
speaker embedding, ``embed_dim``), ``forward(x)`` (what the loss head classifies,
``output_dim``), ``feat_dim`` and ``min_frames`` (the shortest input it accepts).
"""

from __future__ import annotations

from torch import nn

from sid.config import ModelConfig, parse_model
from sid.errors import SidError
from sid.models.ecapa import ECAPATDNN
from sid.models.recurrent import ConvGRUEmbedder, DVector, GRUEmbedder
from sid.models.resnet import ResNet
from sid.models.resnet_se import ResNetSE
from sid.models.tdnn import XVector

MODELS = {"xvector": XVector, "ecapa_tdnn": ECAPATDNN, "resnet": ResNet, "resnet_se": ResNetSE, "dvector": DVector,
          "gru": GRUEmbedder, "conv_gru": ConvGRUEmbedder}


def build_model(model: ModelConfig | dict) -> nn.Module:
    """The network of a ``model`` section (a mapping is validated by ``sid.config.parse_model``)."""
    if not isinstance(model, ModelConfig):
        model = parse_model(model)
    try:
        return MODELS[model.type](**model.args)
    except ValueError as err:   # constraints between arguments (e.g. channels divisible by scale)
        raise SidError(f"model '{model.type}': {err}") from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

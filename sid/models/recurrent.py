"""Recurrent speaker embedders: GE2E d-vectors and simple-speaker-embedding's GRUs.

All take (batch, frames, feat_dim), run a stacked unidirectional RNN and embed the
last frame's output (what the d-vector papers and Resemblyzer do), L2-normalised.

* ``dvector``: ``nn.LSTM(feat_dim, hidden, layers, batch_first=True)``, with
  ``proj_dim > 0`` an LSTM with projection (``proj_size``; the GE2E paper's 768 cells
  projected to 256, which is then the embedding) and otherwise a linear layer
  ``hidden -> embed_dim`` with ReLU (Resemblyzer's shape: LSTM 3 x 256 on 40 mels,
  Linear(256, 256) + ReLU, 1,423,616 parameters; its module names are kept: ``lstm``,
  ``linear``, so published weights load as they are).
* ``gru``: ``nn.GRU(feat_dim, hidden, layers)`` then Linear(hidden, embed_dim).
* ``conv_gru``: the same GRU over a 1-D convolutional encoder of the raw waveform.
  The waveform arrives as "frames" of ``frame_samples`` consecutive samples (10 ms
  rows, the ``waveform`` front-end), so chunking, voiced-frame selection and
  batching treat it like any feature matrix; the encoder's strides multiply to
  ``frame_samples``, giving one encoder frame per row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _LastFrame(nn.Module):
    embed_dim: int
    output_dim: int

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(feats)


class DVector(_LastFrame):
    def __init__(self, feat_dim: int = 40, hidden: int = 256, num_layers: int = 3, proj_dim: int = 0,
                 embed_dim: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(feat_dim, hidden, num_layers, batch_first=True, proj_size=proj_dim)
        if proj_dim:
            if embed_dim != proj_dim:
                raise ValueError(f"with proj_dim the embedding is the projection: embed_dim must be {proj_dim}")
            self.linear = None
        else:
            self.linear = nn.Linear(hidden, embed_dim)
        self.feat_dim = feat_dim
        self.embed_dim = self.output_dim = embed_dim
        self.min_frames = 1

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(feats)
        last = out[:, -1]
        if self.linear is not None:
            last = F.relu(self.linear(last))
        return F.normalize(last.float(), dim=-1)


class GRUEmbedder(_LastFrame):
    def __init__(self, feat_dim: int = 80, hidden: int = 786, num_layers: int = 3, embed_dim: int = 256):
        super().__init__()
        self.gru = nn.GRU(feat_dim, hidden, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden, embed_dim)
        self.feat_dim = feat_dim
        self.embed_dim = self.output_dim = embed_dim
        self.min_frames = 1

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.encode(feats))
        return F.normalize(self.linear(out[:, -1]).float(), dim=-1)

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        return feats


class ConvGRUEmbedder(GRUEmbedder):
    """Raw waveform rows of ``feat_dim`` samples -> conv encoder -> GRU. ``strides``
    must multiply to ``feat_dim``; kernels are twice the stride (half overlap)."""

    def __init__(self, feat_dim: int = 160, conv_channels: int = 256, strides: tuple[int, ...] = (5, 4, 2, 2, 2),
                 hidden: int = 786, num_layers: int = 3, embed_dim: int = 256):
        if math.prod(strides) != feat_dim:
            raise ValueError(f"the strides {list(strides)} multiply to {math.prod(strides)}, "
                           f"not to the {feat_dim} samples of a waveform row")
        super().__init__(conv_channels, hidden, num_layers, embed_dim)
        layers, cin = [], 1
        for s in strides:
            # Left padding s keeps the output length exactly samples / prod(strides).
            layers += [nn.ConstantPad1d((s, 0), 0.0), nn.Conv1d(cin, conv_channels, 2 * s, stride=s, bias=False),
                       nn.BatchNorm1d(conv_channels), nn.ReLU()]
            cin = conv_channels
        self.encoder = nn.Sequential(*layers)
        self.feat_dim = feat_dim

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        wav = feats.reshape(feats.shape[0], 1, -1)
        return self.encoder(wav).transpose(1, 2)


class UnprojectedLSTM(nn.Module):
    """An ``nn.LSTM`` with projections (``proj_size``: ``dvector`` with ``proj_dim``) as LSTMs
    without, which ONNX has (export, ``sid.bin.export_model``): each layer's recurrent weights
    times its projection (the recurrence reads the projected state ``W_hr h``, so ``W_hh W_hr``
    reads ``h``), its outputs projected after it. Zero initial states, batch first."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.layers = nn.ModuleList()
        self.projections = nn.ParameterList()
        size = lstm.input_size
        for k in range(lstm.num_layers):
            layer = nn.LSTM(size, lstm.hidden_size, batch_first=True)
            w_hr = getattr(lstm, f"weight_hr_l{k}").detach()
            with torch.no_grad():
                layer.weight_ih_l0.copy_(getattr(lstm, f"weight_ih_l{k}"))
                layer.weight_hh_l0.copy_((getattr(lstm, f"weight_hh_l{k}").double() @ w_hr.double()).float())
                layer.bias_ih_l0.copy_(getattr(lstm, f"bias_ih_l{k}"))
                layer.bias_hh_l0.copy_(getattr(lstm, f"bias_hh_l{k}"))
            self.layers.append(layer)
            self.projections.append(nn.Parameter(w_hr.t().contiguous(), requires_grad=False))
            size = lstm.proj_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        for layer, projection in zip(self.layers, self.projections):
            x = layer(x)[0] @ projection
        return x, None


def without_projections(model: nn.Module) -> nn.Module:
    """``model``, or a copy of it whose LSTMs with projections are ``UnprojectedLSTM``s."""
    import copy

    lstms = [name for name, m in model.named_modules() if isinstance(m, nn.LSTM) and m.proj_size > 0]
    if not lstms:
        return model
    model = copy.deepcopy(model)
    for name in lstms:
        parent, _, child = name.rpartition(".")
        module = model.get_submodule(parent)
        setattr(module, child, UnprojectedLSTM(getattr(module, child)))
    return model

"""voxceleb_trainer's ResNetSE34L and ResNetSE34V2 (Chung et al. 2020, "In defence of
metric learning for speaker recognition"; Heo et al. 2020).

Squeeze-excitation BasicBlocks [3, 4, 6, 3] over the (frequency, time) map of a
log-mel spectrogram, instance-normalised per chunk and mel bin (the front-end itself
is ``sid.features.frontends.VTMel``):

* ``variant: L`` (ResNetSE34L): 7x7 stem with stride (2, 1), channels
  16/32/64/128 (quarter width), stage strides 1, 2, 2, 1; frequency averaged, then
  self-attentive pooling (SAP) over time and a linear 512-dim embedding.
* ``variant: V2`` (ResNetSE34V2): 3x3 stem, channels 32/64/128/256 (half width),
  stage strides 1, 2, 2, 2; the (channel, frequency) map flattened and pooled by
  attentive statistics (ASP), then linear 512.

With ``base_channels`` 16 and 40 mels, L has 1,437,078 parameters; V2 with 32 and 64
mels 8,028,492 (as the published models). ``relu_before_bn``: the published code's order
in the first convolution of every block and in V2's stem, conv -> ReLU -> batch norm
(imported checkpoints, ``sid.pretrained``); otherwise conv -> batch norm -> ReLU.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


class SEBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, reduction: int = 8, relu_before_bn: bool = False):
        super().__init__()
        self.relu_before_bn = relu_before_bn
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = nn.Sequential(nn.Linear(cout, cout // reduction), nn.ReLU(), nn.Linear(cout // reduction, cout),
                                nn.Sigmoid())
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.conv1(x)
        out = self.bn1(self.relu(out)) if self.relu_before_bn else self.relu(self.bn1(out))
        out = self.bn2(self.conv2(out))
        out = out * self.se(out.mean(dim=(2, 3)))[:, :, None, None]
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class _Stem(nn.Module):
    """conv -> BN -> ReLU, or conv -> ReLU -> BN; parameters named as nn.Sequential(conv, bn)'s."""

    def __init__(self, conv: nn.Module, bn: nn.Module, relu_before_bn: bool):
        super().__init__()
        self.add_module("0", conv)
        self.add_module("1", bn)
        self.relu_before_bn = relu_before_bn

    def forward(self, x):
        x = self._modules["0"](x)
        return self._modules["1"](torch.relu(x)) if self.relu_before_bn else torch.relu(self._modules["1"](x))


class SelfAttentivePool(nn.Module):
    """(B, C, T) -> (B, C): softmax over time of ``tanh(W x_t + b) . v``."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.attention = nn.Parameter(torch.empty(dim, 1))
        nn.init.xavier_normal_(self.attention)
        self.out_dim = dim

    def forward(self, x):
        x = x.transpose(1, 2)
        w = torch.softmax(torch.tanh(self.linear(x)) @ self.attention, dim=1)
        return (x * w).sum(dim=1)


class AttentiveStatsPoolV2(nn.Module):
    """(B, D, T) -> (B, 2D): per-channel attention (conv 1x1 -> ReLU -> BN -> conv 1x1,
    softmax over time), weighted mean and standard deviation (floored at 1e-5)."""

    def __init__(self, dim: int, bottleneck: int = 128):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(dim, bottleneck, 1), nn.ReLU(), nn.BatchNorm1d(bottleneck),
                                       nn.Conv1d(bottleneck, dim, 1))
        self.out_dim = 2 * dim

    def forward(self, x):
        w = torch.softmax(self.attention(x), dim=2)
        mu = (x * w).sum(dim=2)
        sg = torch.sqrt(((x * x * w).sum(dim=2) - mu * mu).clamp(min=1e-5))
        return torch.cat([mu, sg], dim=1)


class ResNetSE(nn.Module):
    def __init__(self, feat_dim: int = 40, variant: Literal["L", "V2"] = "L", base_channels: int = 16,
                 num_blocks: tuple[int, ...] = (3, 4, 6, 3), embed_dim: int = 512, relu_before_bn: bool = False):
        super().__init__()
        if variant not in ("L", "V2"):
            raise ValueError(f"variant must be L or V2, got '{variant}'")
        c = [base_channels * 2 ** i for i in range(4)]
        if variant == "L":
            self.stem = nn.Sequential(nn.Conv2d(1, c[0], 7, stride=(2, 1), padding=3, bias=False),
                                      nn.BatchNorm2d(c[0]), nn.ReLU())
            strides = (1, 2, 2, 1)
        else:
            conv, bn = nn.Conv2d(1, c[0], 3, padding=1), nn.BatchNorm2d(c[0])
            # Sequential indices stay 0 (conv) and 1 (batch norm) whichever comes first.
            self.stem = _Stem(conv, bn, relu_before_bn)
            strides = (1, 2, 2, 2)
        layers, cin = [], c[0]
        for cout, n, s in zip(c, num_blocks, strides):
            for j in range(n):
                layers.append(SEBasicBlock(cin, cout, s if j == 0 else 1, relu_before_bn=relu_before_bn))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.norm = nn.InstanceNorm1d(feat_dim)
        self.variant = variant
        if variant == "L":
            self.pool = SelfAttentivePool(cin)
        else:
            freq = feat_dim
            for s in strides:
                freq = (freq + s - 1) // s
            self.pool = AttentiveStatsPoolV2(cin * freq)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.feat_dim = feat_dim
        self.embed_dim = self.output_dim = embed_dim
        self.min_frames = 8

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.norm(feats.transpose(1, 2)).unsqueeze(1)   # (B, 1, F, T), each mel bin normalised over the chunk
        x = self.layers(self.stem(x))
        if self.variant == "L":
            x = x.mean(dim=2)
        else:
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        return self.fc(self.pool(x.float()))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(feats)

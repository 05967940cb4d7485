"""Pooling layers that turn frame-level features (B, C, T) into one vector per chunk.

* ``StatsPool``: mean and standard deviation over time (Kaldi's stats-layer, x-vector).
* ``AttentiveStatsPool``: channel-wise attention, optionally with global context
  (ECAPA-TDNN, Desplanques et al. 2020), weighted mean and standard deviation.
* ``TemporalStatsPool``: for 2-D feature maps (B, C, F, T) flattened to (B, C*F, T)
  then mean and standard deviation (WeSpeaker's TSTP for ResNets).

The standard deviation is floored (``eps``) under the square root so silence-like
constant chunks give finite gradients.
"""

from __future__ import annotations

import torch
from torch import nn


def _mean_std(x: torch.Tensor, eps: float, unbiased: bool = False) -> torch.Tensor:
    mean = x.mean(dim=-1)
    var = x.var(dim=-1, unbiased=unbiased) if x.shape[-1] > 1 else torch.zeros_like(mean)
    return torch.cat([mean, torch.sqrt(var.clamp(min=eps))], dim=-1)


class StatsPool(nn.Module):
    """Mean and standard deviation over the whole input; output dim 2*C."""

    def __init__(self, in_dim: int, eps: float = 1e-10):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mean_std(x.float(), self.eps)


class TemporalStatsPool(nn.Module):
    """Statistics over time of a (B, C, F, T) map: output dim 2*C*F."""

    def __init__(self, in_dim: int, eps: float = 1e-7):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        # Unbiased variance as WeSpeaker's TSTP, so its checkpoints behave alike.
        return _mean_std(x.float(), self.eps, unbiased=True)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with channel-dependent attention.

    With ``global_context`` the attention network also sees the utterance mean and
    standard deviation of every channel (the ECAPA-TDNN variant).
    """

    def __init__(self, in_dim: int, bottleneck: int = 128, global_context: bool = True, eps: float = 1e-4):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.global_context = global_context
        self.eps = eps
        att_in = 3 * in_dim if global_context else in_dim
        self.attention = nn.Sequential(
            nn.Conv1d(att_in, bottleneck, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(bottleneck),
            nn.Tanh(),
            nn.Conv1d(bottleneck, in_dim, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        t = x.shape[-1]
        if self.global_context:
            mean = x.mean(dim=-1, keepdim=True)
            std = torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False).clamp(min=self.eps))
            inp = torch.cat([x, mean.expand(-1, -1, t), std.expand(-1, -1, t)], dim=1)
        else:
            inp = x
        w = torch.softmax(self.attention(inp).float(), dim=-1)
        mu = torch.sum(x * w, dim=-1)
        sg = torch.sqrt((torch.sum(x * x * w, dim=-1) - mu * mu).clamp(min=self.eps))
        return torch.cat([mu, sg], dim=-1)

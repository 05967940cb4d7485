"""Pooling layers that turn frame-level features (B, C, T) into one vector per chunk.

* ``StatsPool``: mean and standard deviation over time (Kaldi's stats-layer, x-vector).
* ``AttentiveStatsPool``: channel-wise attention, optionally with global context
  (ECAPA-TDNN, Desplanques et al. 2020), weighted mean and standard deviation.
* ``TemporalStatsPool``: for 2-D feature maps (B, C, F, T) flattened to (B, C*F, T)
  then mean and standard deviation (WeSpeaker's TSTP for ResNets).

The standard deviation is floored (``eps``) under the square root so silence-like
constant chunks give finite gradients.

Each takes optional ``lengths`` (B,): row b has ``lengths[b]`` valid frames and
padding after them, which the statistics and the attention ignore (batched
extraction of chunks of different lengths, see ``sid.extract``).
"""

from __future__ import annotations

import torch
from torch import nn


def frame_mask(lengths: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, frames): 1 on each row's first ``lengths[b]`` frames, 0 on its padding."""
    return (torch.arange(frames, device=lengths.device) < lengths[:, None]).unsqueeze(1).to(dtype)


def _mean_std(x: torch.Tensor, eps: float, unbiased: bool = False, lengths: torch.Tensor | None = None) -> torch.Tensor:
    if lengths is None:
        mean = x.mean(dim=-1)
        var = x.var(dim=-1, unbiased=unbiased) if x.shape[-1] > 1 else torch.zeros_like(mean)
    else:
        mask = frame_mask(lengths, x.shape[-1], x.dtype)
        n = lengths.to(x.dtype)[:, None]
        mean = (x * mask).sum(dim=-1) / n
        sq = (((x - mean.unsqueeze(-1)) * mask) ** 2).sum(dim=-1)
        # As torch.var: one frame has variance 0 (not 0/0 when unbiased).
        var = sq / (n - 1).clamp(min=1) if unbiased else sq / n
    return torch.cat([mean, torch.sqrt(var.clamp(min=eps))], dim=-1)


class StatsPool(nn.Module):
    """Mean and standard deviation over the whole input; output dim 2*C."""

    def __init__(self, in_dim: int, eps: float = 1e-10):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.eps = eps

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return _mean_std(x.float(), self.eps, lengths=lengths)


class TemporalStatsPool(nn.Module):
    """Statistics over time of a (B, C, F, T) map: output dim 2*C*F."""

    def __init__(self, in_dim: int, eps: float = 1e-7):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.eps = eps

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        # Unbiased variance as WeSpeaker's TSTP, so its checkpoints behave alike.
        return _mean_std(x.float(), self.eps, unbiased=True, lengths=lengths)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling with channel-dependent attention.

    With ``global_context`` the attention network also sees the utterance mean and
    standard deviation of every channel (the ECAPA-TDNN variant). ``light``: WeSpeaker's
    form, conv -> tanh -> conv, its global context with the unbiased variance.
    """

    def __init__(self, in_dim: int, bottleneck: int = 128, global_context: bool = True, eps: float = 1e-4,
                 light: bool = False):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = 2 * in_dim
        self.global_context = global_context
        self.eps = eps
        self.light = light
        att_in = 3 * in_dim if global_context else in_dim
        if light:
            self.attention = nn.Sequential(nn.Conv1d(att_in, bottleneck, kernel_size=1), nn.Tanh(),
                                           nn.Conv1d(bottleneck, in_dim, kernel_size=1))
        else:
            self.attention = nn.Sequential(
                nn.Conv1d(att_in, bottleneck, kernel_size=1),
                nn.ReLU(),
                nn.BatchNorm1d(bottleneck),
                nn.Tanh(),
                nn.Conv1d(bottleneck, in_dim, kernel_size=1),
            )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float()
        t = x.shape[-1]
        if self.global_context:
            if lengths is None:
                mean = x.mean(dim=-1, keepdim=True)
                var = x.var(dim=-1, keepdim=True, unbiased=self.light) if t > 1 else torch.zeros_like(mean)
                std = torch.sqrt(var.clamp(min=self.eps))
            else:
                mean, std = _mean_std(x, self.eps, self.light, lengths).unsqueeze(-1).chunk(2, dim=1)
            inp = torch.cat([x, mean.expand(-1, -1, t), std.expand(-1, -1, t)], dim=1)
        else:
            inp = x
        logits = self.attention(inp).float()
        if lengths is not None:
            logits = logits.masked_fill(frame_mask(lengths, t, torch.bool).logical_not(), float("-inf"))
        w = torch.softmax(logits, dim=-1)
        mu = torch.sum(x * w, dim=-1)
        sg = torch.sqrt((torch.sum(x * x * w, dim=-1) - mu * mu).clamp(min=self.eps))
        return torch.cat([mu, sg], dim=-1)

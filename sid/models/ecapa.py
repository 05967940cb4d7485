"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, Interspeech 2020).

Conv1d(k=5) stem, three SE-Res2Blocks (kernel 3, dilations 2/3/4, Res2Net scale 8,
squeeze-excitation bottleneck 128), multi-layer feature aggregation (a 1x1 conv over
the concatenated block outputs to 1536 channels), attentive statistics pooling with
global context (bottleneck 128), batch norm, a 192-dim embedding layer and batch
norm. Each block's input is the sum of the stem and all earlier block outputs (the
paper's residual connections). With C=512 it has 6.2M parameters, with C=1024 14.7M.

``embed(x, lengths)`` runs a batch of chunks padded to one length: the output of
every conv-ReLU-BN is zeroed on the padding, so the kernel-3/5 convolutions see
there the zeros a lone chunk's convolution padding gives, and the squeeze-excitation
mean and the pooling count only valid frames.

``style`` selects how published implementations differ from the paper's form (``paper``),
so that their checkpoints import exactly (``sid.pretrained``):

* ``wespeaker``: each block reads the previous block's output (no sum of all earlier
  ones); attention conv -> tanh -> conv (no ReLU, no batch norm), its global context with
  the unbiased variance; no batch norm after the embedding layer.
* ``speechbrain``: blocks chained likewise; the Res2Net split passes its first group
  through (the others are convolved); convolutions pad by reflection; the aggregation
  conv -> ReLU -> batch norm; no batch norm after the embedding layer. Reflection padding
  is not zero padding: a batch of chunks of different lengths is embedded row by row.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sid.models.pooling import AttentiveStatsPool, frame_mask


class _ConvReluBn(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1, reflect: bool = False):
        super().__init__()
        self.pad = dilation * (kernel - 1) // 2
        self.reflect = reflect and self.pad > 0
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=0 if self.reflect else self.pad)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x, mask=None):
        if self.reflect:
            x = F.pad(x, (self.pad, self.pad), mode="reflect")
        x = self.bn(self.relu(self.conv(x)))
        return x if mask is None else x * mask


class _Res2Conv(nn.Module):
    """Res2Net hierarchical convolution: split channels in ``scale`` groups, each
    group's conv also sees the previous group's output; the last group passes through."""

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int, first_through: bool = False,
                 reflect: bool = False):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by Res2Net scale {scale}")
        self.width = channels // scale
        self.first_through = first_through
        self.convs = nn.ModuleList(_ConvReluBn(self.width, self.width, kernel, dilation, reflect)
                                   for _ in range(scale - 1))

    def forward(self, x, mask=None):
        parts = torch.split(x, self.width, dim=1)
        if self.first_through:   # group 0 as it is, group i convolved with group i-1's output added
            out = [parts[0]]
            for i, conv in enumerate(self.convs, 1):
                out.append(conv(parts[i] if i == 1 else parts[i] + out[-1], mask))
            return torch.cat(out, dim=1)
        out = []
        sp = None
        for i, conv in enumerate(self.convs):
            sp = parts[i] if i == 0 else sp + parts[i]
            sp = conv(sp, mask)
            out.append(sp)
        out.append(parts[-1])
        return torch.cat(out, dim=1)


class _SE(nn.Module):
    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Conv1d(channels, bottleneck, 1), nn.ReLU(),
            nn.Conv1d(bottleneck, channels, 1), nn.Sigmoid())

    def forward(self, x, mask=None):
        # x is zero on the padding (masked by the layer before).
        mean = x.mean(dim=-1, keepdim=True) if mask is None else x.sum(dim=-1, keepdim=True) / mask.sum(dim=-1, keepdim=True)
        return x * self.fc(mean)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, scale: int = 8, se_bottleneck: int = 128,
                 first_through: bool = False, reflect: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            _ConvReluBn(channels, channels, 1),
            _Res2Conv(channels, kernel, dilation, scale, first_through, reflect),
            _ConvReluBn(channels, channels, 1),
            _SE(channels, se_bottleneck),
        )

    def forward(self, x, mask=None):
        y = x
        for layer in self.body:
            y = layer(y, mask)
        return x + y


class ECAPATDNN(nn.Module):
    """Input (B, T, feat_dim); output the ``embed_dim`` embedding (also the head's input)."""

    def __init__(self, feat_dim: int = 80, channels: int = 512, embed_dim: int = 192, scale: int = 8,
                 dilations: tuple[int, ...] = (2, 3, 4), mfa_channels: int = 1536, attention_bottleneck: int = 128,
                 se_bottleneck: int = 128, global_context: bool = True,
                 style: Literal["paper", "wespeaker", "speechbrain"] = "paper"):
        super().__init__()
        if style not in ("paper", "wespeaker", "speechbrain"):
            raise ValueError(f"style must be paper, wespeaker or speechbrain, got '{style}'")
        sb = style == "speechbrain"
        self.style = style
        self.stem = _ConvReluBn(feat_dim, channels, kernel=5, reflect=sb)
        self.blocks = nn.ModuleList(SERes2Block(channels, 3, d, scale, se_bottleneck, first_through=sb, reflect=sb)
                                    for d in dilations)
        mfa = [nn.Conv1d(channels * len(dilations), mfa_channels, 1), nn.ReLU()]
        self.mfa = nn.Sequential(*mfa, nn.BatchNorm1d(mfa_channels)) if sb else nn.Sequential(*mfa)
        self.pool = AttentiveStatsPool(mfa_channels, attention_bottleneck, global_context,
                                       **({"eps": 1e-10, "light": True} if style == "wespeaker" else
                                          {"eps": 1e-12} if sb else {}))
        self.pool_bn = nn.BatchNorm1d(self.pool.out_dim)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.fc_bn = nn.BatchNorm1d(embed_dim) if style == "paper" else None
        self.embed_dim = embed_dim
        self.feat_dim = feat_dim
        self.output_dim = embed_dim
        self.min_frames = 2

    def embed(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings of (B, T, feat_dim) chunks; with ``lengths``, row b is valid up to frame lengths[b]."""
        if self.style == "speechbrain" and lengths is not None and bool((lengths != lengths[0]).any()):
            return torch.cat([self.embed(feats[i:i + 1, :int(n)]) for i, n in enumerate(lengths)])
        x = feats.transpose(1, 2)
        mask = None
        if lengths is not None:
            mask = frame_mask(lengths, x.shape[-1], x.dtype)
            x = x * mask
        x = self.stem(x, mask)
        outs = []
        inp = x
        for block in self.blocks:
            out = block(inp, mask)
            outs.append(out)
            inp = inp + out if self.style == "paper" else out
        x = self.mfa(torch.cat(outs, dim=1))
        if mask is not None and self.style == "speechbrain":
            x = x * mask
        pooled = self.pool_bn(self.pool(x, lengths))
        emb = self.fc(pooled)
        return emb if self.fc_bn is None else self.fc_bn(emb)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(feats)

"""The x-vector TDNN of Kaldi's egs/voxceleb ``run_xvector_1a`` (Snyder et al. 2018).

Frame layers (context in frames; every layer is affine, ReLU, then batch norm
without learnable scale/offset, as Kaldi's ``relu-batchnorm-layer``)::

    tdnn1  {-2,-1,0,1,2}  512        tdnn4  {0}  512
    tdnn2  {-2,0,2}       512        tdnn5  {0}  1500
    tdnn3  {-3,0,3}       512
    stats  mean+stddev over the whole input  -> 3000
    tdnn6  affine 512  (the x-vector is this affine output)  ReLU, BN
    tdnn7  affine 512  ReLU, BN  -> output layer (the loss head)

Convolutions are unpadded like Kaldi's nnet3, so a chunk needs at least 15 frames
(``min_frames``); shorter input is edge-padded by the extractor. Unpadded, they
also never mix a chunk's frames with padding after it: ``embed(x, lengths)`` on
chunks padded to one length needs only the pooling to stop at each chunk's
``lengths - 14`` output frames.
"""

from __future__ import annotations

import torch
from torch import nn

from sid.models.pooling import StatsPool


class _TdnnLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, context: int, dilation: int, affine_bn: bool):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=context, dilation=dilation)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(out_dim, affine=affine_bn)

    def forward(self, x):
        return self.bn(self.relu(self.conv(x)))


class XVector(nn.Module):
    """Kaldi's x-vector network. Input (B, T, feat_dim); ``embed`` gives tdnn6's affine output."""

    def __init__(self, feat_dim: int = 30, channels: int = 512, stats_channels: int = 1500,
                 embed_dim: int = 512, hidden_dim: int = 512, affine_bn: bool = False):
        super().__init__()
        c = channels
        self.frames = nn.Sequential(
            _TdnnLayer(feat_dim, c, 5, 1, affine_bn),
            _TdnnLayer(c, c, 3, 2, affine_bn),
            _TdnnLayer(c, c, 3, 3, affine_bn),
            _TdnnLayer(c, c, 1, 1, affine_bn),
            _TdnnLayer(c, stats_channels, 1, 1, affine_bn),
        )
        self.pool = StatsPool(stats_channels)
        self.segment6 = nn.Linear(self.pool.out_dim, embed_dim)
        self.post6 = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(embed_dim, affine=affine_bn))
        self.segment7 = nn.Linear(embed_dim, hidden_dim)
        self.post7 = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(hidden_dim, affine=affine_bn))
        self.embed_dim = embed_dim
        self.feat_dim = feat_dim
        self.output_dim = hidden_dim
        self.min_frames = 15

    def embed(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings of (B, T, feat_dim) chunks; with ``lengths``, row b is valid up to frame lengths[b]."""
        x = self.frames(feats.transpose(1, 2))
        if lengths is not None:
            lengths = lengths - (self.min_frames - 1)  # the frame layers' context
        return self.segment6(self.pool(x, lengths).to(x.dtype))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """The representation the loss head classifies (tdnn7 after ReLU and BN)."""
        return self.post7(self.segment7(self.post6(self.embed(feats))))

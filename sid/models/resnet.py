"""ResNet34 for speaker embeddings as WeSpeaker and voxceleb_trainer use it.

2-D convolutions over the (frequency, time) feature map: a 3x3 stem with 32
channels, BasicBlocks [3, 4, 6, 3] with 32/64/128/256 channels (stride 2 from the
second stage), temporal statistics pooling over the flattened (channel, frequency)
map (256 x feat_dim/8), and a linear 256-dim embedding layer. 6.6M parameters for
80-dim fbank.

``embed(x, lengths)`` runs a batch of chunks padded to one length: after every
convolution stage the padding is zeroed (lengths halved, rounded up, at each
stride-2 stage, as a lone chunk's feature map shrinks), so the 3x3 convolutions see
there the zeros a lone chunk's padding gives, and the pooling counts valid frames only.
"""

from __future__ import annotations

import torch
from torch import nn

from sid.models.pooling import TemporalStatsPool, frame_mask


def _masked(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """(B, C, F, T) with the frames after each row's length zeroed."""
    return x if lengths is None else x * frame_mask(lengths, x.shape[-1], x.dtype).unsqueeze(1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.stride = stride
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x, lengths=None):
        """``lengths``: valid frames of each row of the output (x is already zero after its own)."""
        out = _masked(self.relu(self.bn1(self.conv1(x))), lengths)
        out = self.bn2(self.conv2(out))
        return _masked(self.relu(out + self.shortcut(x)), lengths)


class ResNet(nn.Module):
    """Input (B, T, feat_dim); output the embedding (also the head's input)."""

    def __init__(self, feat_dim: int = 80, base_channels: int = 32, num_blocks: tuple[int, ...] = (3, 4, 6, 3), embed_dim: int = 256):
        super().__init__()
        c = base_channels
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        layers = []
        cin = c
        for i, n in enumerate(num_blocks):
            cout = c * 2 ** i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, stride=2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        downsample = 2 ** (len(num_blocks) - 1)
        freq_out = (feat_dim + downsample - 1) // downsample
        self.pool = TemporalStatsPool(cin * freq_out)
        self.fc = nn.Linear(self.pool.out_dim, embed_dim)
        self.embed_dim = embed_dim
        self.feat_dim = feat_dim
        self.output_dim = embed_dim
        self.min_frames = downsample

    def embed(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings of (B, T, feat_dim) chunks; with ``lengths``, row b is valid up to frame lengths[b]."""
        x = _masked(feats.transpose(1, 2).unsqueeze(1), lengths)  # (B, 1, F, T)
        x = _masked(self.stem(x), lengths)
        for block in self.layers:
            if lengths is not None and block.stride > 1:
                lengths = (lengths + block.stride - 1) // block.stride  # a 3x3 conv, padding 1, stride 2
            x = block(x, lengths)
        return self.fc(self.pool(x, lengths).to(x.dtype))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.embed(feats)

"""Classification heads for speaker-embedding training, and the margin schedule.

* ``softmax``: a linear layer with bias, cross-entropy (Kaldi's output layer).
* ``am_softmax``: additive margin, ``s * (cos(theta) - m)`` for the target class
  (CosFace / AM-softmax).
* ``aam_softmax``: additive angular margin, ``s * cos(theta + m)`` (ArcFace);
  ``easy_margin`` applies the margin only where cos(theta) > 0, otherwise the
  target logit is kept monotonic past theta = pi - m by ``cos(theta) - m sin(m)``
  (as WeSpeaker and InsightFace do).

Each head's ``forward(x, labels)`` returns ``(loss, logits)``, computed in fp32 even
under mixed precision; ``margin`` is an attribute the ``MarginScheduler`` sets every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sid.config import LossConfig
from sid.errors import SidError


class SoftmaxHead(nn.Module):
    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)
        self.margin = 0.0

    def forward(self, x, labels):
        with torch.autocast(x.device.type, enabled=False):
            logits = self.fc(x.float())
        return F.cross_entropy(logits, labels), logits


class _CosineHead(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, margin: float, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin = margin
        self.scale = scale

    def cosine(self, x):
        # fp32 even under autocast: the margin acts on cosines near 1, where bf16 has no resolution.
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(F.normalize(x.float()), F.normalize(self.weight.float())).clamp(-1.0, 1.0)


class AMSoftmaxHead(_CosineHead):
    def forward(self, x, labels):
        cos = self.cosine(x)
        target = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(target, cos - self.margin, cos)
        return F.cross_entropy(logits, labels), self.scale * cos


class AAMSoftmaxHead(_CosineHead):
    def __init__(self, in_dim: int, num_classes: int, margin: float, scale: float, easy_margin: bool = False):
        super().__init__(in_dim, num_classes, margin, scale)
        self.easy_margin = easy_margin

    def forward(self, x, labels):
        cos = self.cosine(x)
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=0.0))
        phi = cos * math.cos(m) - sin * math.sin(m)
        if self.easy_margin:
            phi = torch.where(cos > 0, phi, cos)
        else:
            phi = torch.where(cos > math.cos(math.pi - m), phi, cos - math.sin(math.pi - m) * m)
        target = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(target, phi, cos)
        return F.cross_entropy(logits, labels), self.scale * cos


def build_head(loss: LossConfig, in_dim: int, num_classes: int) -> nn.Module:
    if loss.type == "softmax":
        return SoftmaxHead(in_dim, num_classes)
    if loss.type == "am_softmax":
        return AMSoftmaxHead(in_dim, num_classes, loss.margin, loss.scale)
    if loss.type == "aam_softmax":
        return AAMSoftmaxHead(in_dim, num_classes, loss.margin, loss.scale, loss.easy_margin)
    raise SidError(f"loss type '{loss.type}' has no head")


class MarginScheduler:
    """WeSpeaker's margin schedule: 0 before ``increase_start_epoch``, then a ramp to
    the final margin reached at ``fix_start_epoch``, constant after.

    ``increase_type`` is ``exp`` (WeSpeaker's default: fast at first) or ``linear``.
    Epochs are fractional (``epoch + step_in_epoch / steps_per_epoch``) so the ramp is
    smooth and a function of the training position alone, hence resumable.
    """

    def __init__(self, final_margin: float, increase_start_epoch: float, fix_start_epoch: float,
                 increase_type: str, initial_margin: float):
        if increase_type not in ("exp", "linear"):
            raise SidError(f"margin increase_type must be exp or linear, got '{increase_type}'")
        if fix_start_epoch < increase_start_epoch:
            raise SidError("margin schedule: fix_start_epoch must not precede increase_start_epoch")
        self.final = final_margin
        self.initial = initial_margin
        self.start = increase_start_epoch
        self.fix = fix_start_epoch
        self.kind = increase_type

    def __call__(self, epoch: float) -> float:
        if epoch < self.start:
            return self.initial
        if epoch >= self.fix:
            return self.final
        ratio = (epoch - self.start) / (self.fix - self.start)
        if self.kind == "exp":
            # 1 - exp(log(1e-3) * ratio) reaches ~1 at the end, as WeSpeaker's exp ramp.
            ratio = (1.0 - math.exp(math.log(1e-3) * ratio)) / (1.0 - 1e-3)
        return self.initial + (self.final - self.initial) * ratio

    @classmethod
    def from_config(cls, loss: LossConfig):
        """None where the loss has no margin or no schedule (the margin then stays fixed)."""
        sched = loss.margin_schedule
        if loss.type == "softmax" or sched is None:
            return None
        return cls(loss.margin, sched.increase_start_epoch, sched.fix_start_epoch, sched.increase_type,
                   sched.initial_margin)

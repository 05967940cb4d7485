"""Classification heads for speaker-embedding training, and the margin schedule.

* ``softmax``: a linear layer with bias, cross-entropy (Kaldi's output layer).
* ``am_softmax``: additive margin, ``s * (cos(theta) - m)`` for the target class
  (CosFace / AM-softmax).
* ``aam_softmax``: additive angular margin, ``s * cos(theta + m)`` (ArcFace);
  ``easy_margin`` applies the margin only where cos(theta) > 0, otherwise the
  target logit is kept monotonic past theta = pi - m by ``cos(theta) - m sin(m)``
  (as WeSpeaker and InsightFace do).

Metric-learning losses over batches of N speakers x M utterances (speaker-major rows,
``data.sampler: speaker_balanced``):

* ``ge2e``: generalised end-to-end loss (Wan et al. 2018). Every utterance is scored
  against every speaker centroid, its own speaker's centroid computed without it;
  ``S = w cos + b`` with learnable ``w`` (kept positive), ``b`` (initialised 10, -5).
  ``variant: softmax`` is cross-entropy over the N centroids; ``variant: contrast`` is
  ``1 - sigmoid(S_own) + max over other speakers of sigmoid(S_other)``.
* ``angular_prototypical``: the first utterance of each speaker is the query, the
  centroid of its M-1 others the prototype; cross-entropy of ``w cos + b`` over the N
  prototypes (Chung et al. 2020, voxceleb_trainer's ``angleproto``).
* ``softmax_proto``: a softmax classification layer plus the angular prototypical loss
  (their sum).
* ``triplet``: anchor = first utterance of a speaker, positive = its second, negatives
  = every utterance of the other speakers; hinge ``max(0, d(a,p) - d(a,n) + margin)`` on
  squared distances of unit-length embeddings, averaged over all negatives, or only
  the hardest (nearest) negative per anchor with ``hard_negative: true``.

Each head's ``forward(x, labels)`` returns ``(loss, logits)``, or for metric losses
``(loss, logits, targets)`` where the logits score the batch's own speakers (the
accuracy's reference is then ``targets``), computed in fp32 even under mixed
precision; ``margin`` is an attribute the ``MarginScheduler`` sets every step.
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


def _by_speaker(x: torch.Tensor, labels: torch.Tensor, m: int, name: str) -> torch.Tensor:
    """(N*M, D) speaker-major rows as (N, M, D), fp32; a clear error if the batch is not N x M."""
    if x.shape[0] % m or x.shape[0] // m < 2 or not bool((labels.view(-1, m) == labels.view(-1, m)[:, :1]).all()):
        raise SidError(f"loss '{name}' needs batches of N >= 2 speakers x {m} utterances in speaker-major order: "
                       f"set data.sampler: speaker_balanced with utts_per_speaker: {m}")
    return x.float().view(-1, m, x.shape[-1])


class _ScaledCosine(nn.Module):
    """Learnable ``w cos + b``, ``w`` clamped positive."""

    def __init__(self, init_w: float, init_b: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    def forward(self, cos):
        return self.w.clamp(min=1e-6) * cos + self.b


class GE2EHead(nn.Module):
    def __init__(self, utts_per_speaker: int, variant: str = "softmax", init_w: float = 10.0, init_b: float = -5.0):
        super().__init__()
        if utts_per_speaker < 2:
            raise SidError("loss 'ge2e' needs data.utts_per_speaker >= 2 (centroids exclude the utterance itself)")
        if variant not in ("softmax", "contrast"):
            raise SidError(f"ge2e variant must be softmax or contrast, got '{variant}'")
        self.m = utts_per_speaker
        self.variant = variant
        self.scale = _ScaledCosine(init_w, init_b)
        self.margin = 0.0

    def forward(self, x, labels):
        with torch.autocast(x.device.type, enabled=False):
            e = F.normalize(_by_speaker(x, labels, self.m, "ge2e"), dim=-1)
            n, m, _ = e.shape
            total = e.sum(dim=1)                                        # (N, D)
            own = (total[:, None, :] - e) / (m - 1)                     # centroid without the utterance, (N, M, D)
            cos = torch.einsum("jid,kd->jik", e, F.normalize(total, dim=-1))
            cos_own = F.cosine_similarity(e, own, dim=-1)               # (N, M)
            mask = torch.eye(n, dtype=torch.bool, device=x.device)[:, None, :].expand(n, m, n)
            cos = torch.where(mask, cos_own[..., None].expand(n, m, n), cos)
            s = self.scale(cos).reshape(n * m, n)
            targets = torch.arange(n, device=x.device).repeat_interleave(m)
            if self.variant == "softmax":
                loss = F.cross_entropy(s, targets)
            else:
                sig = torch.sigmoid(s)
                own_sig = sig.gather(1, targets[:, None])[:, 0]
                other = sig.masked_fill(F.one_hot(targets, n).bool(), float("-inf")).max(dim=1).values
                loss = (1.0 - own_sig + other).mean()
        return loss, s, targets


class AngularPrototypicalHead(nn.Module):
    def __init__(self, utts_per_speaker: int, init_w: float = 10.0, init_b: float = -5.0):
        super().__init__()
        if utts_per_speaker < 2:
            raise SidError("loss 'angular_prototypical' needs data.utts_per_speaker >= 2")
        self.m = utts_per_speaker
        self.scale = _ScaledCosine(init_w, init_b)
        self.margin = 0.0

    def forward(self, x, labels):
        with torch.autocast(x.device.type, enabled=False):
            e = _by_speaker(x, labels, self.m, "angular_prototypical")
            query, proto = e[:, 0], e[:, 1:].mean(dim=1)
            s = self.scale(F.cosine_similarity(query[:, None, :], proto[None, :, :], dim=-1))
            targets = torch.arange(e.shape[0], device=x.device)
            return F.cross_entropy(s, targets), s, targets


class SoftmaxProtoHead(nn.Module):
    """Softmax over the training speakers plus angular prototypical; accuracy from the softmax."""

    def __init__(self, in_dim: int, num_classes: int, utts_per_speaker: int, init_w: float = 10.0,
                 init_b: float = -5.0):
        super().__init__()
        self.softmax = SoftmaxHead(in_dim, num_classes)
        self.proto = AngularPrototypicalHead(utts_per_speaker, init_w, init_b)
        self.margin = 0.0

    def forward(self, x, labels):
        loss_s, logits = self.softmax(x, labels)
        loss_p = self.proto(x, labels)[0]
        return loss_s + loss_p, logits


class TripletHead(nn.Module):
    def __init__(self, utts_per_speaker: int, margin: float = 0.1, hard_negative: bool = False):
        super().__init__()
        if utts_per_speaker < 2:
            raise SidError("loss 'triplet' needs data.utts_per_speaker >= 2 (an anchor and a positive)")
        self.m = utts_per_speaker
        self.margin = margin
        self.hard_negative = hard_negative

    def forward(self, x, labels):
        with torch.autocast(x.device.type, enabled=False):
            e = F.normalize(_by_speaker(x, labels, self.m, "triplet"), dim=-1)
            n, m, d = e.shape
            anchor, positive = e[:, 0], e[:, 1]
            d_pos = ((anchor - positive) ** 2).sum(-1)                               # (N,)
            d_all = ((anchor[:, None, None, :] - e[None]) ** 2).sum(-1).view(n, n * m)  # anchor i to every row
            other = ~torch.eye(n, dtype=torch.bool, device=x.device).repeat_interleave(m, dim=1)
            if self.hard_negative:
                d_neg = d_all.masked_fill(~other, float("inf")).min(dim=1).values
                loss = F.relu(d_pos - d_neg + self.margin).mean()
            else:
                hinge = F.relu(d_pos[:, None] - d_all + self.margin)
                loss = hinge[other].mean()
            # Accuracy: each anchor against the other utterances' speaker means (nearest wins).
            s = -((anchor[:, None, :] - F.normalize(e[:, 1:].mean(1), dim=-1)[None]) ** 2).sum(-1)
            targets = torch.arange(n, device=x.device)
        return loss, s, targets


METRIC_LOSSES = ("ge2e", "angular_prototypical", "softmax_proto", "triplet")


def build_head(loss: LossConfig, in_dim: int, num_classes: int, utts_per_speaker: int = 0) -> nn.Module:
    """The head of a ``loss`` section; metric losses score batches of ``utts_per_speaker``
    utterances per speaker."""
    if loss.type in METRIC_LOSSES and utts_per_speaker < 2:
        raise SidError(f"loss '{loss.type}' needs data.sampler: speaker_balanced with utts_per_speaker >= 2")
    if loss.type == "softmax":
        return SoftmaxHead(in_dim, num_classes)
    if loss.type == "am_softmax":
        return AMSoftmaxHead(in_dim, num_classes, loss.margin, loss.scale)
    if loss.type == "aam_softmax":
        return AAMSoftmaxHead(in_dim, num_classes, loss.margin, loss.scale, loss.easy_margin)
    if loss.type == "ge2e":
        return GE2EHead(utts_per_speaker, loss.variant, loss.init_w, loss.init_b)
    if loss.type == "angular_prototypical":
        return AngularPrototypicalHead(utts_per_speaker, loss.init_w, loss.init_b)
    if loss.type == "softmax_proto":
        return SoftmaxProtoHead(in_dim, num_classes, utts_per_speaker, loss.init_w, loss.init_b)
    if loss.type == "triplet":
        return TripletHead(utts_per_speaker, loss.margin, loss.hard_negative)
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

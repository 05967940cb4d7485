"""Metric-learning losses against values worked out by hand on one tiny batch:
2 speakers x 2 utterances of unit 2-D vectors, a1 = (1, 0), a2 = (0.6, 0.8),
b1 = (0, 1), b2 = (-0.8, 0.6). Pairwise cosines: a1.a2 = 0.6, b1.b2 = 0.6, a1.b1 = 0,
a1.b2 = -0.8, a2.b1 = 0.8, a2.b2 = 0. Speaker centroids (both utterances):
c_A = (0.8, 0.4), c_B = (-0.4, 0.8), each of norm sqrt(0.8)."""

from __future__ import annotations

import math

import pytest
import torch

from sid.config import LossConfig
from sid.errors import SidError
from sid.losses import (AngularPrototypicalHead, GE2EHead, SoftmaxProtoHead, TripletHead, build_head)

X = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6]])
LABELS = torch.tensor([7, 7, 3, 3])
R8 = math.sqrt(0.8)


def _ce(own: float, *others: float) -> float:
    return -own + math.log(math.exp(own) + sum(math.exp(o) for o in others))


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# (cosine with own centroid without the utterance, cosine with the other speaker's centroid) per row:
# a1: own = a2 -> 0.6, c_B -> -0.4/sqrt(.8); a2: own = a1 -> 0.6, c_B -> (0.6*-0.4 + 0.8*0.8)/sqrt(.8) = 0.4/sqrt(.8);
# b1: own = b2 -> 0.6, c_A -> 0.4/sqrt(.8); b2: own = b1 -> 0.6, c_A -> (-0.64 + 0.24)/sqrt(.8) = -0.4/sqrt(.8).
GE2E_COS = [(0.6, -0.4 / R8), (0.6, 0.4 / R8), (0.6, 0.4 / R8), (0.6, -0.4 / R8)]


def test_ge2e_softmax_matches_hand_value():
    head = GE2EHead(2, "softmax")
    loss, logits, targets = head(X, LABELS)
    want = sum(_ce(10 * o - 5, 10 * c - 5) for o, c in GE2E_COS) / 4
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)
    assert targets.tolist() == [0, 0, 1, 1]
    assert float(logits[1, 1].detach()) == pytest.approx(10 * 0.4 / R8 - 5, rel=1e-5)
    loss.backward()
    assert head.scale.w.grad is not None and head.scale.b.grad is not None   # w and b learn


def test_ge2e_contrast_matches_hand_value():
    loss = GE2EHead(2, "contrast")(X, LABELS)[0]
    want = sum(1 - _sig(10 * o - 5) + _sig(10 * c - 5) for o, c in GE2E_COS) / 4
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)


def test_ge2e_scale_and_bias_initialised_10_and_minus_5():
    head = build_head(LossConfig("ge2e"), 2, 5, utts_per_speaker=3)
    assert float(head.scale.w) == 10.0 and float(head.scale.b) == -5.0


def test_angular_prototypical_matches_hand_value():
    # Queries a1, b1; prototypes (mean of the rest) a2, b2.
    loss = AngularPrototypicalHead(2)(X, LABELS)[0]
    want = (_ce(10 * 0.6 - 5, 10 * -0.8 - 5) + _ce(10 * 0.6 - 5, 10 * 0.8 - 5)) / 2
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5)


def test_softmax_proto_is_softmax_plus_prototypical():
    head = SoftmaxProtoHead(2, 2, 2)
    with torch.no_grad():
        head.softmax.fc.weight.copy_(torch.eye(2))
        head.softmax.fc.bias.zero_()
    labels = torch.tensor([0, 0, 1, 1])
    loss, logits = head(X, labels)
    softmax = (_ce(1.0, 0.0) + _ce(0.6, 0.8) + _ce(1.0, 0.0) + _ce(0.6, -0.8)) / 4
    proto = (_ce(1.0, -13.0) + _ce(1.0, 3.0)) / 2
    assert float(loss.detach()) == pytest.approx(softmax + proto, rel=1e-5)
    assert logits.shape == (4, 2)
    assert sum(p.numel() for p in head.parameters()) == 2 * 2 + 2 + 2


def test_triplet_all_negatives_and_hard_negative():
    # Squared distances of unit vectors are 2 - 2 cos: d(a1,a2) = d(b1,b2) = 0.8; anchor a1 to b1, b2:
    # 2, 3.6; anchor b1 to a1, a2: 2, 0.4. Margin 0.5: only (b1, a2) violates, by 0.8 - 0.4 + 0.5 = 0.9.
    loss = TripletHead(2, margin=0.5)(X, LABELS)[0]
    assert float(loss.detach()) == pytest.approx(0.9 / 4, rel=1e-5)
    loss = TripletHead(2, margin=0.5, hard_negative=True)(X, LABELS)[0]
    assert float(loss.detach()) == pytest.approx(0.9 / 2, rel=1e-5)


def test_metric_losses_need_speaker_balanced_batches():
    with pytest.raises(SidError, match="speaker_balanced"):
        GE2EHead(2)(X, torch.tensor([1, 2, 3, 3]))
    with pytest.raises(SidError, match="speaker_balanced"):
        build_head(LossConfig("angular_prototypical"), 2, 5)

"""Margin heads and the margin schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sid.config import LossConfig, MarginScheduleConfig, parse_config
from sid.errors import SidError
from sid.losses import AAMSoftmaxHead, AMSoftmaxHead, MarginScheduler, SoftmaxHead, build_head


def _cos(head, x):
    return F.linear(F.normalize(x), F.normalize(head.weight))


def test_aam_target_logit_is_cos_theta_plus_m():
    torch.manual_seed(0)
    head = AAMSoftmaxHead(16, 5, margin=0.2, scale=30.0)
    x = torch.randn(8, 16)
    labels = torch.arange(8) % 5
    loss, logits = head(x, labels)
    cos = _cos(head, x)
    theta = torch.acos(cos.clamp(-1, 1))
    expect = 30.0 * cos.clone()
    tgt = torch.cos(theta[torch.arange(8), labels] + 0.2)
    # Past theta = pi - m the target logit continues as cos(theta) - m sin(m) (never larger than cos).
    fallback = cos[torch.arange(8), labels] - math.sin(math.pi - 0.2) * 0.2
    use = cos[torch.arange(8), labels] > math.cos(math.pi - 0.2)
    expect[torch.arange(8), labels] = 30.0 * torch.where(use, tgt, fallback)
    assert torch.allclose(loss, F.cross_entropy(expect, labels), atol=1e-5)
    assert torch.allclose(logits, 30.0 * cos, atol=1e-5)   # accuracy uses the margin-free logits


def test_aam_easy_margin_only_for_positive_cosine():
    head = AAMSoftmaxHead(2, 2, margin=0.3, scale=10.0, easy_margin=True)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[-1.0, 0.2]])  # cos with class 0 is negative
    loss, _ = head(x, torch.tensor([0]))
    cos = _cos(head, x)
    assert torch.allclose(loss, F.cross_entropy(10.0 * cos, torch.tensor([0])), atol=1e-6)
    x = torch.tensor([[1.0, 0.5]])
    loss, _ = head(x, torch.tensor([0]))
    cos = _cos(head, x)
    target = torch.cos(torch.acos(cos[0, 0]) + 0.3)
    assert torch.allclose(loss, F.cross_entropy(10.0 * torch.stack([target, cos[0, 1]])[None], torch.tensor([0])), atol=1e-6)


def test_am_softmax_subtracts_margin_from_target_cosine():
    torch.manual_seed(1)
    head = AMSoftmaxHead(8, 4, margin=0.35, scale=20.0)
    x, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    loss, _ = head(x, labels)
    cos = _cos(head, x)
    cos[torch.arange(6), labels] -= 0.35
    assert torch.allclose(loss, F.cross_entropy(20.0 * cos, labels), atol=1e-5)


def test_zero_margin_heads_agree_and_train():
    torch.manual_seed(2)
    am = AMSoftmaxHead(8, 4, 0.0, 15.0)
    aam = AAMSoftmaxHead(8, 4, 0.0, 15.0)
    aam.weight.data.copy_(am.weight.data)
    x, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 1])
    assert torch.allclose(am(x, labels)[0], aam(x, labels)[0], atol=1e-5)
    sm = SoftmaxHead(8, 4)
    loss, logits = sm(x.requires_grad_(), labels)
    loss.backward()
    assert logits.shape == (5, 4) and x.grad is not None and sm.fc.bias.grad is not None


def test_margin_schedule_hold_ramp_fix():
    lin = MarginScheduler(0.2, 20, 40, "linear", 0.0)
    assert lin(0) == 0.0 and lin(19.99) == 0.0
    assert lin(30) == pytest.approx(0.1)
    assert lin(40) == 0.2 and lin(100) == 0.2
    exp = MarginScheduler(0.2, 20, 40, "exp", 0.0)
    values = [exp(e) for e in (20, 25, 30, 35, 40)]
    assert values[0] == pytest.approx(0.0) and values[-1] == pytest.approx(0.2)
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[1] > 0.1   # the exponential ramp is fast at first
    with pytest.raises(SidError):
        MarginScheduler(0.2, 40, 20, "exp", 0.0)


def test_build_head_from_config():
    loss = parse_config({"model": {"type": "xvector"}, "loss": {"type": "aam_softmax", "margin": 0.3, "scale": 35,
                                                                "easy_margin": True}}).loss
    head = build_head(loss, 16, 10)
    assert isinstance(head, AAMSoftmaxHead) and head.margin == 0.3 and head.scale == 35 and head.easy_margin
    assert MarginScheduler.from_config(LossConfig("softmax")) is None
    assert MarginScheduler.from_config(LossConfig("aam_softmax")) is None     # no schedule: fixed margin
    sched = MarginScheduler.from_config(LossConfig("aam_softmax", margin=0.2, margin_schedule=MarginScheduleConfig(
        increase_start_epoch=1, fix_start_epoch=2)))
    assert sched(0.5) == 0.0 and sched(5) == 0.2


def test_heads_compute_in_fp32_under_autocast():
    torch.manual_seed(3)
    head = AAMSoftmaxHead(16, 5, margin=0.2, scale=30.0)
    x, labels = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    ref, _ = head(x, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head(x.bfloat16(), labels)
    assert logits.dtype == torch.float32
    assert torch.allclose(loss, ref, rtol=1e-2)

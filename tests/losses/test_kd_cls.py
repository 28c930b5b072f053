"""KD_cls (the paper's classification distillation, Section 3) against direct per-sample loops."""
import math

import numpy as np
import pytest
import torch

from dicod_d2.errors import ConfigError, UserError
from dicod_d2.losses import kd_cls_sigmoid, kd_cls_softmax


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _loop_softmax(student, teacher, T):
    total = 0.0
    for zs, zt in zip(student, teacher, strict=True):
        ps, pt = _softmax(zs / T), _softmax(zt / T)
        total += sum(pt[c] * (math.log(pt[c]) - math.log(ps[c])) for c in range(len(zt)))
    return T * T * total  # a sum over the positives


def _loop_sigmoid(student, teacher, T):
    total = 0.0
    for zs, zt in zip(student, teacher, strict=True):
        kl = 0.0
        for s, t in zip(zs, zt, strict=True):
            p, q = 1 / (1 + math.exp(-t / T)), 1 / (1 + math.exp(-s / T))
            kl += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        total += kl / len(zt)
    return T * T * total  # a sum over the positives


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 5, generator=g, dtype=torch.float64) * 3, torch.randn(6, 4, generator=g, dtype=torch.float64) * 3


@pytest.mark.parametrize("T", [1.0, 2.0, 3.0])
def test_softmax_matches_loop(logits, T):
    student, teacher = logits
    got = kd_cls_softmax(student, teacher, T)
    assert got.item() == pytest.approx(_loop_softmax(student.numpy(), teacher.numpy(), T), rel=1e-10)


@pytest.mark.parametrize("T", [1.0, 2.0, 3.0])
def test_sigmoid_matches_loop(logits, T):
    student, teacher = logits
    got = kd_cls_sigmoid(student[:, :4], teacher, T)
    assert got.item() == pytest.approx(_loop_sigmoid(student[:, :4].numpy(), teacher.numpy(), T), rel=1e-10)


def test_zero_when_distributions_match(logits):
    _, teacher = logits
    no_background = torch.cat([teacher, torch.full((6, 1), -1e4, dtype=teacher.dtype)], 1)
    assert kd_cls_softmax(no_background, teacher, 2.0).abs().item() < 1e-12
    assert kd_cls_sigmoid(teacher.clone(), teacher, 2.0).abs().item() < 1e-12
    # and positive otherwise (a student with background mass)
    assert kd_cls_softmax(torch.cat([teacher, torch.zeros(6, 1, dtype=teacher.dtype)], 1), teacher).item() > 0.01


def test_temperature_squared_scaling(logits):
    """With T² folded out, the KL on logits z/T equals the KL at T=1 on logits z/T."""
    student, teacher = logits
    for fn, s in ((kd_cls_softmax, student), (kd_cls_sigmoid, student[:, :4])):
        at_t = fn(s, teacher, 3.0)
        at_one = fn(s / 3.0, teacher / 3.0, 1.0)
        torch.testing.assert_close(at_t, 9.0 * at_one)


def test_background_probability_zero_contributes_nothing_and_no_nan():
    teacher = torch.tensor([[50.0, -50.0, -1000.0]])  # p^t underflows to exactly 0 for two classes
    student = torch.tensor([[0.0, 3.0, -1e30, 2.0]], requires_grad=True)
    loss = kd_cls_softmax(student, teacher, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_empty_is_a_connected_zero():
    student = torch.zeros(0, 5, requires_grad=True)
    for fn, s in ((kd_cls_softmax, student), (kd_cls_sigmoid, student[:, :4])):
        loss = fn(s, torch.zeros(0, 4))
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()


def test_teacher_gets_no_gradient(logits):
    student, teacher = logits
    teacher = teacher.clone().requires_grad_()
    kd_cls_softmax(student.requires_grad_(), teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_shape_mismatch_raises(logits):
    student, teacher = logits
    with pytest.raises(ValueError, match="background") as info:
        kd_cls_softmax(student[:, :4], teacher)
    assert not isinstance(info.value, UserError)  # a shape mismatch is a bug
    with pytest.raises(ValueError, match="background"):
        kd_cls_sigmoid(student, teacher)
    with pytest.raises(ConfigError, match="temperature T must be > 0, got 0.0: set the distiller's temperature"):
        kd_cls_sigmoid(student[:, :4], teacher, T=0.0)
    with pytest.raises(ConfigError, match="temperature T must be > 0, got -1"):
        kd_cls_softmax(student, teacher, T=-1)

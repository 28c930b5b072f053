"""Classification distillation (KD_cls, the paper's Section 3): KL(teacher ‖ student) on positive samples.

K positives; the teacher has C classes. Each function returns the SUM over the K positives; the caller
divides it once (by K for the paper's written mean, or by the student's loss normaliser, see
:class:`~dicod_d2.modeling.DICODDistiller`). Teacher logits never receive a gradient (detached).
An empty batch (K = 0) gives a zero connected to the student's graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = ["kd_cls_softmax", "kd_cls_sigmoid"]


def _check(student_logits: Tensor, teacher_logits: Tensor, student_cols: int, T: float) -> None:
    if student_logits.dim() != 2 or teacher_logits.dim() != 2:
        raise ValueError(
            f"logits must be 2-D [K, classes], got student {tuple(student_logits.shape)} and "
            f"teacher {tuple(teacher_logits.shape)}."
        )
    if student_logits.shape[0] != teacher_logits.shape[0] or student_logits.shape[1] != student_cols:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} do not fit teacher logits "
            f"{tuple(teacher_logits.shape)}: expected student [K, {student_cols}] with the teacher's K. "
            "Softmax students carry one extra (last) background column; sigmoid students none. "
            "Check that the teacher was trained on the student's classes."
        )
    if not T > 0:
        raise ConfigError(
            f"temperature T must be > 0, got {T}: set the distiller's temperature "
            "(model.distiller.temperature) to a positive value."
        )


def kd_cls_softmax(student_logits: Tensor, teacher_logits: Tensor, T: float = 2.0) -> Tensor:
    """``T² · Σ_k KL(p^t_k ‖ p^s_k)`` for a softmax student with a background class.

    Args:
        student_logits: [K, C + 1]; the last column is background (detectron2's convention).
        teacher_logits: [K, C]; the teacher's background probability is 0.
        T: temperature (> 0).
    Returns:
        Scalar, the sum over the K positives. Terms with ``p^t = 0`` (the background, or an underflowed class) contribute 0.
    """
    _check(student_logits, teacher_logits, teacher_logits.shape[1] + 1, T)
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    log_pt = F.log_softmax(teacher_logits.detach().to(student_logits.dtype) / T, dim=1)
    log_ps = F.log_softmax(student_logits / T, dim=1)[:, :-1]  # background: p^t = 0, no term
    pt = log_pt.exp()
    terms = torch.where(pt > 0, pt * (log_pt - log_ps), torch.zeros_like(pt))
    return T * T * terms.sum(dim=1).sum()


def kd_cls_sigmoid(student_logits: Tensor, teacher_logits: Tensor, T: float = 2.0) -> Tensor:
    """``T² · Σ_k (1/C) Σ_c KL([σ(z^t/T), 1−σ(z^t/T)] ‖ [σ(z^s/T), 1−σ(z^s/T)])``.

    Args:
        student_logits: [K, C] per-class logits (no background column).
        teacher_logits: [K, C].
        T: temperature (> 0).
    Returns:
        Scalar, the sum over the K positives.
    """
    _check(student_logits, teacher_logits, teacher_logits.shape[1], T)
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    zt = teacher_logits.detach().to(student_logits.dtype) / T
    zs = student_logits / T
    pt = torch.sigmoid(zt)
    kl = pt * (F.logsigmoid(zt) - F.logsigmoid(zs)) + (1 - pt) * (
        F.logsigmoid(-zt) - F.logsigmoid(-zs)
    )
    return T * T * kl.mean(dim=1).sum()

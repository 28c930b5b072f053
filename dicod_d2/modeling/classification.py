"""A teacher classifier trainable by detectron2's engine: losses in training, logits in eval.

:class:`CropClassifier` wraps a :class:`dicod_d2.teacher.TeacherClassifier` (``self.classifier``,
so checkpoint keys are ``classifier.<torchvision key>``) and consumes the items of
:class:`dicod_d2.data.object_crops.ObjectCropMapper` (one image, all its object crops).
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
import torch.nn.functional as F
from detectron2.utils.events import get_event_storage
from fvcore.nn import sigmoid_focal_loss
from torch import Tensor, nn

from ..errors import ConfigError
from ..teacher import (
    IMAGENET_PIXEL_MEAN,
    IMAGENET_PIXEL_STD,
    SHIPPED_WEIGHTS,
    TeacherMeta,
    build_classifier,
)

__all__ = ["LOSSES", "CropClassifier"]

logger = logging.getLogger(__name__)

#: Loss names accepted by :class:`CropClassifier` (``losses=``).
LOSSES = ("ce", "focal")


class CropClassifier(nn.Module):
    """Classifies object crops; trained with cross-entropy, sigmoid focal loss, or both.

    Args:
        arch: a name of ``dicod_d2.teacher.CLASSIFIERS``.
        class_names: the C classes, in the dataset's ``thing_classes`` order (logit i = class i).
        input_size: s, side of the square crops (px); stored in the teacher file.
        init_weights: None (scratch), a local torchvision-format state-dict file, or a name of
            ``SHIPPED_WEIGHTS`` (e.g. "efficientnet_lite0_imagenet"); the head is replaced.
        losses: any of "ce" (softmax cross-entropy, mean over crops) and "focal" (RetinaNet's
            sigmoid focal loss, summed over classes and averaged over crops); both: summed.
        focal_alpha, focal_gamma: of the focal loss (RetinaNet: 0.25, 2).
        pixel_mean, pixel_std: per-channel normalisation on the 0..255 scale in ``channel_order``
            (None: the init weights' own, ImageNet's for torchvision files and scratch).
        channel_order: the classifier's channel order ("RGB" for torchvision weights).
        input_format: channel order of the crops it receives (the mapper's ``image_format``).
        load_init_weights: False builds the architecture without reading ``init_weights`` but
            keeps the normalisation and channel order they imply (a checkpoint replaces the
            weights, e.g. ``--eval-only``).
    """

    def __init__(
        self,
        arch: str,
        class_names: Sequence[str],
        input_size: int,
        init_weights: str | None = None,
        losses: Sequence[str] = ("ce",),
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        pixel_mean: Sequence[float] | None = None,
        pixel_std: Sequence[float] | None = None,
        channel_order: str = "RGB",
        input_format: str = "BGR",
        load_init_weights: bool = True,
    ):
        super().__init__()
        losses = tuple(losses)
        if not losses or any(name not in LOSSES for name in losses):
            raise ConfigError(f"model.losses={list(losses)}: must be a non-empty subset of {list(LOSSES)}")
        for name, order in (("channel_order", channel_order), ("input_format", input_format)):
            if order not in ("RGB", "BGR"):
                raise ConfigError(f"model.{name}={order!r}: must be 'RGB' or 'BGR'")
        if init_weights in SHIPPED_WEIGHTS:
            channel_order, default_mean, default_std = SHIPPED_WEIGHTS[init_weights][2]
        else:
            default_mean, default_std = IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD
        self.class_names = [str(n) for n in class_names]
        self.classifier = build_classifier(
            arch, len(self.class_names), (init_weights or None) if load_init_weights else None
        )
        self.input_size = int(input_size)
        self.losses = losses
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)
        self.channel_order, self.input_format = channel_order, input_format
        mean = tuple(float(v) for v in (pixel_mean if pixel_mean is not None else default_mean))
        std = tuple(float(v) for v in (pixel_std if pixel_std is not None else default_std))
        self._normalization = (mean, std)  # exact values for the teacher file
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.num_unreadable = 0

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def normalize(self, crops: Tensor) -> Tensor:
        """``[N,3,s,s]`` 0..255 crops in ``input_format`` -> classifier input (``channel_order``,
        ``(x - pixel_mean) / pixel_std``); what ``FrozenTeacher.normalize`` does at distillation."""
        if self.input_format != self.channel_order:
            crops = crops.flip(1)
        return (crops - self.pixel_mean) / self.pixel_std

    def forward(self, batched_inputs: list[dict]) -> dict[str, Tensor] | list[dict]:
        """Args: items of ``ObjectCropMapper`` (``crops`` [n_i,3,s,s], ``labels`` [n_i]).

        Returns: in training ``{"loss_ce", "loss_focal"}`` (the enabled ones; zero but connected
        to the graph when the batch has no crop); in eval one ``{"logits": [n_i, C]}`` per input.
        """
        crops = torch.cat([x["crops"] for x in batched_inputs]).to(self.device, non_blocking=True)
        logits = self.classifier(self.normalize(crops)) if len(crops) else None
        if not self.training:
            counts = [len(x["crops"]) for x in batched_inputs]
            if logits is None:
                logits = crops.new_zeros((0, len(self.class_names)))
            return [{"logits": part} for part in logits.split(counts)]
        self._count_unreadable(batched_inputs)
        labels = torch.cat([x["labels"] for x in batched_inputs]).to(self.device)
        if logits is None:  # every image of the batch unreadable or emptied by the augmentation
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {f"loss_{name}": zero for name in self.losses}
        out = {}
        if "ce" in self.losses:
            out["loss_ce"] = F.cross_entropy(logits, labels)
        if "focal" in self.losses:
            targets = F.one_hot(labels, len(self.class_names)).to(logits.dtype)
            focal = sigmoid_focal_loss(
                logits, targets, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="sum"
            )
            out["loss_focal"] = focal / len(labels)
        return out

    def _count_unreadable(self, batched_inputs: list[dict]) -> None:
        skipped = sum(bool(x.get("unreadable")) for x in batched_inputs)
        if skipped:
            self.num_unreadable += skipped
            logger.warning(
                "%d unreadable image(s) in this batch; %d skipped so far in this process",
                skipped, self.num_unreadable,
            )
            get_event_storage().put_scalar(
                "data/unreadable_images", self.num_unreadable, smoothing_hint=False
            )

    def teacher_meta(self, recipe: dict | None = None) -> TeacherMeta:
        """The :class:`TeacherMeta` of this classifier (for ``save_teacher_file``)."""
        return TeacherMeta(
            arch=self.classifier.arch,
            num_classes=len(self.class_names),
            class_names=self.class_names,
            input_size=self.input_size,
            channel_order=self.channel_order,
            pixel_mean=self._normalization[0],
            pixel_std=self._normalization[1],
            recipe=dict(recipe or {}),
        )

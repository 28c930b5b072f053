"""DICOD distillation losses for any student (paper §3.1-§3.2, Eq. 1-4), and the student-side mixin.

A student meta-architecture inherits :class:`DistillationStudent` before its detectron2 parent and holds
a :class:`DICODDistiller` in ``self.distiller`` (outside the module tree: not in ``state_dict``,
``parameters()`` or DDP). Its one duty is to call :meth:`DistillationStudent.hand_positives` once per
training forward, where its parent's loss code knows the positives, with a function that builds their
:class:`DistillationPositives`; the mixin's ``forward`` runs the parent's forward unchanged, builds the
unnormalised batch (:func:`raw_images`) and adds :meth:`DICODDistiller.losses` over those positives.

Balance of the terms. The paper writes each term as a mean over the K positives (1/K). The authors'
implementation instead divides the sum over the positives by the normaliser of the detector's own loss
in the same head (the ``avg_factor`` its cross-entropy and box loss use), and the paper's λ were tuned
for that balance. The loss functions (:mod:`dicod_d2.losses`) return the sum over the positives and
the distiller divides it once: with ``normalizer="detector"`` (the default) a term is
``Σ_k term_k / N`` with N the student's normaliser (its :class:`DetectorNormalizer`): KD_cls takes the
classification loss's, L_loc_pix and L_kd_loc the box-regression loss's. ``normalizer="positives"``
divides by K, the paper's written mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..layers.box_crops import crop_boxes_differentiable, crop_boxes_roi_align
from ..losses.kd_cls import kd_cls_sigmoid, kd_cls_softmax
from ..losses.kd_loc import default_loc_pools, loc_feature_loss, loc_pixel_loss

if TYPE_CHECKING:
    from detectron2.structures import Instances

    from ..teacher.frozen import FrozenTeacher

__all__ = [
    "PAPER_SETTINGS",
    "DICODDistiller",
    "DetectorNormalizer",
    "DistillationPositives",
    "DistillationStudent",
    "batch_image_index",
    "raw_images",
]

PIXELS = "pixels"
#: The paper's settings (Sections 3 and 4.1): T of KD_cls, λ_cls, λ_loc. The distiller's defaults and
#: the values the configs write (configs/common/dicod.py).
PAPER_SETTINGS = {"temperature": 2.0, "kd_cls_weight": 0.4, "loc_weight": 0.15}
_KD_CLS = {"softmax": kd_cls_softmax, "sigmoid": kd_cls_sigmoid}
NORMALIZERS = ("detector", "positives")
LOC_PIX_SPACES = ("teacher", "image")


class DetectorNormalizer(NamedTuple):
    """The divisors of a student's own losses in the head the positives come from (counts, > 0).

    Attributes:
        cls: what the student's classification loss is divided by (detectron2 Faster R-CNN box
            head: the number of sampled RoIs of the batch; RetinaNet: its ``loss_normalizer``, a
            moving average of the positive anchors; SSD: the number of positive anchors).
        box: what its box-regression loss is divided by (the same values for these students).
    """

    cls: float
    box: float


@dataclass(frozen=True)
class DistillationPositives:
    """What every student hands to the distiller: its K positive samples of a training batch.

    Attributes:
        logits: [K, C+1] class logits, background last (``mode="softmax"``), or [K, C] per-class
            logits (``mode="sigmoid"``).
        image_index: [K] long, image of each positive in the batch.
        gt_index: [K] long, index of its matched gt box in that image's ``gt_boxes``.
        pred_boxes: [K, 4] XYXY absolute pixels of the padded batch, the predicted box of each
            positive, differentiable w.r.t. the student's box-regression output.
        mode: "softmax" or "sigmoid", the student's classification output.
        detector_normalizer: the divisors of the student's own losses in the head the positives
            come from.
    """

    logits: Tensor
    image_index: Tensor
    gt_index: Tensor
    pred_boxes: Tensor
    mode: str
    detector_normalizer: DetectorNormalizer


class DICODDistiller:
    """Computes the weighted DICOD terms from a frozen classification teacher.

    Args:
        teacher: the frozen classifier (its parameters must not require grad).
        temperature: T of KD_cls.
        kd_cls_weight: λ_cls; ``loss_kd_cls = λ_cls · L_kd_cls``.
        loc_weight: λ_loc; ``loss_loc_pix = λ_loc · L_loc_pix``, ``loss_kd_loc = λ_loc · L_kd_loc``.
        kd_cls, loc_pix, kd_loc: enable each term.
        crop_size: side s of every crop in pixels (default: the teacher's input size).
        loc_layers: KD_loc layer list; "pixels" (the normalised crop) feeds L_loc_pix, every other
            entry (teacher features "stem", "stage1".."stage4") feeds L_kd_loc.
        loc_pools: pool size per ``loc_layers`` entry (default ``4·2^i`` for the i-th entry).
        chunk_size: teacher batch size for the gt-crop logits.
        input_format: channel order of the student's images, "BGR" or "RGB".
        class_names: the student's classes; checked against the teacher's when given.
        max_loc_positives_per_image: None (default, the paper: every positive) or M ≥ 1: L_loc_pix
            and L_kd_loc use at most M positives per image, drawn at random (``torch.rand``) among
            that image's positives each iteration; KD_cls still uses every positive. Bounds the
            teacher's forward/backward cost of the predicted-box crops (a speed lever; it changes
            the loss values, and the RNG stream, only when set).
        kd_cls_target: "teacher" (DICOD) or "label_smoothing": the control experiment, the same
            KD_cls term toward the label-smoothed ground truth ``(1-ε)·onehot + ε/C`` instead of
            the teacher (needs ``gt_classes`` in :meth:`losses`; no KD_loc). With ``loc_pix`` it
            also computes L_loc_pix, which needs no teacher knowledge: the ``teacher`` then serves
            only its input normalisation (mean, std), so that the term is on DICOD's scale; its
            logits and features are never computed (``loc_layers`` must be only "pixels").
        label_smoothing: ε of the control target.
        normalizer: "detector" (default, the authors' balance): each term is its sum over the
            positives divided by the student's :class:`DetectorNormalizer` (KD_cls by ``cls``,
            L_loc_pix / L_kd_loc by ``box``); "positives": divided by K, as the paper writes it.
        loc_pix_space: the pixels L_loc_pix compares. "teacher" (default): the crops as the teacher
            sees them, normalised by its mean and std; "image": the image's 0-255 scale with the mean
            subtracted and std 1 (the authors' SSD input), i.e. ``std`` times larger per channel.
        debug_checks: also check the positives' indices against the batch (data-dependent: forces a
            device synchronisation every step, so off by default; shapes are always checked).
    """

    def __init__(
        self,
        teacher: FrozenTeacher,
        *,
        temperature: float = PAPER_SETTINGS["temperature"],
        kd_cls_weight: float = PAPER_SETTINGS["kd_cls_weight"],
        loc_weight: float = PAPER_SETTINGS["loc_weight"],
        kd_cls: bool = True,
        loc_pix: bool = True,
        kd_loc: bool = True,
        crop_size: int | None = None,
        loc_layers: Sequence[str] = (PIXELS, "stem"),
        loc_pools: Sequence[int] | None = None,
        chunk_size: int = 512,
        input_format: str = "BGR",
        class_names: Sequence[str] | None = None,
        max_loc_positives_per_image: int | None = None,
        kd_cls_target: str = "teacher",
        label_smoothing: float = 0.1,
        normalizer: str = "detector",
        loc_pix_space: str = "teacher",
        debug_checks: bool = False,
    ):
        if kd_cls_target not in ("teacher", "label_smoothing"):
            raise ConfigError(f"kd_cls_target must be 'teacher' or 'label_smoothing', got {kd_cls_target!r}.")
        if teacher is None and (kd_cls_target == "teacher" or loc_pix or kd_loc):
            raise ConfigError(
                "teacher=None only works for the label-smoothing control (kd_cls_target="
                "'label_smoothing', loc_pix=False, kd_loc=False); give a teacher file otherwise."
            )
        if kd_cls_target == "label_smoothing" and (kd_loc or any(n != PIXELS for n in loc_layers if loc_pix)):
            raise ConfigError(
                "the label-smoothing control uses no teacher output: kd_loc must be False and "
                f"loc_layers only '{PIXELS}' (got kd_loc={kd_loc}, loc_layers={list(loc_layers)})."
            )
        if normalizer not in NORMALIZERS:
            raise ConfigError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}.")
        if loc_pix_space not in LOC_PIX_SPACES:
            raise ConfigError(f"loc_pix_space must be one of {LOC_PIX_SPACES}, got {loc_pix_space!r}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        if teacher is not None and any(p.requires_grad for p in teacher.model.parameters()):
            raise ConfigError(
                "the teacher has parameters with requires_grad=True; build it with FrozenTeacher "
                "(which freezes it) so that no weight gradient is ever computed."
            )
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}.")
        if kd_cls_weight < 0 or loc_weight < 0:
            raise ConfigError(
                f"loss weights must be >= 0 (a negative weight rewards the error), got "
                f"kd_cls_weight={kd_cls_weight}, loc_weight={loc_weight}."
            )
        if input_format not in ("BGR", "RGB"):
            raise ConfigError(f"input_format must be 'BGR' or 'RGB', got {input_format!r}.")
        loc_layers = tuple(loc_layers)
        loc_pools = default_loc_pools(len(loc_layers)) if loc_pools is None else tuple(loc_pools)
        if len(loc_pools) != len(loc_layers):
            raise ConfigError(f"loc_pools {loc_pools} needs one pool size per loc_layers entry {loc_layers}.")
        if any(int(p) < 1 for p in loc_pools):
            raise ConfigError(f"every loc_pools entry must be a positive integer, got {loc_pools}.")
        if crop_size is not None and int(crop_size) < 1:
            raise ConfigError(f"crop_size must be a positive integer (or None: the teacher's input size), got {crop_size}.")
        if loc_pix and PIXELS not in loc_layers:
            raise ConfigError(
                f"loc_pix=True needs '{PIXELS}' in loc_layers (got {loc_layers}); add it or set loc_pix=False."
            )
        if kd_loc and all(n == PIXELS for n in loc_layers):
            raise ConfigError(
                f"kd_loc=True needs a teacher feature layer (e.g. 'stem') in loc_layers (got {loc_layers}); "
                "add one or set kd_loc=False."
            )
        if max_loc_positives_per_image is not None and int(max_loc_positives_per_image) < 1:
            raise ConfigError(
                f"max_loc_positives_per_image must be None (use every positive) or >= 1, "
                f"got {max_loc_positives_per_image}."
            )
        if class_names is not None and teacher is not None:
            teacher.check_class_names(class_names, "DICODDistiller(class_names=...)")
        self.teacher = teacher
        self.kd_cls_target = kd_cls_target
        self.label_smoothing = float(label_smoothing)
        self.temperature = float(temperature)
        self.kd_cls_weight = float(kd_cls_weight)
        self.loc_weight = float(loc_weight)
        self.kd_cls = bool(kd_cls)
        self.loc_pix = bool(loc_pix)
        self.kd_loc = bool(kd_loc)
        self.crop_size = int(crop_size or (teacher.meta.input_size if teacher is not None else 0))
        self.loc_layers = loc_layers
        self.loc_pools = loc_pools
        self.chunk_size = int(chunk_size)
        self.input_format = input_format
        self.max_loc_positives_per_image = (
            None if max_loc_positives_per_image is None else int(max_loc_positives_per_image)
        )
        self.normalizer = normalizer
        self.loc_pix_space = loc_pix_space
        self.debug_checks = bool(debug_checks)

    def __repr__(self) -> str:
        return (
            f"DICODDistiller(kd_cls={self.kd_cls}, loc_pix={self.loc_pix}, kd_loc={self.kd_loc}, "
            f"T={self.temperature}, kd_cls_weight={self.kd_cls_weight}, loc_weight={self.loc_weight}, "
            f"crop_size={self.crop_size}, loc_layers={self.loc_layers}, loc_pools={self.loc_pools}, "
            f"kd_cls_target={self.kd_cls_target}, normalizer={self.normalizer}, "
            f"loc_pix_space={self.loc_pix_space}, "
            f"teacher={self.teacher.meta.arch if self.teacher is not None else None})"
        )

    @property
    def loss_names(self) -> tuple[str, ...]:
        """Keys returned by :meth:`losses`, in order."""
        enabled = (self.kd_cls, self.loc_pix, self.kd_loc)
        names = ("loss_kd_cls", "loss_loc_pix", "loss_kd_loc")
        return tuple(n for n, on in zip(names, enabled, strict=True) if on)

    def losses(
        self,
        images: Tensor,
        gt_boxes: Sequence[Tensor],
        student_logits: Tensor,
        pos_image_index: Tensor,
        pos_gt_index: Tensor,
        pred_boxes: Tensor,
        mode: str,
        gt_classes: Sequence[Tensor] | None = None,
        detector_normalizer: DetectorNormalizer | None = None,
    ) -> dict[str, Tensor]:
        """Weighted DICOD losses over the K positives of a batch.

        Args:
            images: [B, 3, H, W] float 0..255, UNNORMALISED, in ``input_format``, the (padded)
                batch whose coordinates the boxes use (see :func:`raw_images`).
            gt_boxes: B tensors [G_i, 4], XYXY absolute pixels.
            student_logits: [K, C+1] (``mode="softmax"``, background last) or [K, C] ("sigmoid").
            pos_image_index: [K] long, image of each positive.
            pos_gt_index: [K] long, index of its matched gt box within that image.
            pred_boxes: [K, 4] XYXY absolute pixels, the decoded predicted box of each positive
                (differentiable: L_loc_pix / L_kd_loc backpropagate into it).
            mode: "softmax" or "sigmoid", the student's classification output.
            gt_classes: B tensors [G_i] long, contiguous class ids; needed only by the
                label-smoothing control.
            detector_normalizer: the student's :class:`DetectorNormalizer`; required when the
                distiller was built with ``normalizer="detector"``, ignored with "positives".
        Returns:
            ``{name: scalar}`` for the enabled terms (see :attr:`loss_names`), each finite and
            connected to the student's graph also when K = 0.

        Every gt box of the batch is cropped once (one ``roi_align`` call, no grad) and classified
        once (chunked), also one without a positive, so that no shape depends on the indices' values;
        the same normalised crops are the gt branch of KD_loc (both crops sample the same points).
        The "pixels" of L_loc_pix are the teacher's normalised input. The predicted branch runs the
        teacher up to the deepest ``loc_layers`` entry for all K positives with autograd, so its
        activation memory grows with K.
        """
        if mode not in _KD_CLS:
            raise ValueError(f"mode must be 'softmax' or 'sigmoid', got {mode!r}.")
        num_pos = self._check_inputs(images, gt_boxes, student_logits, pos_image_index, pos_gt_index, pred_boxes)
        cls_div, box_div = self._divisors(num_pos, detector_normalizer)
        if num_pos == 0:
            zero = student_logits.sum() * 0.0 + pred_boxes.sum() * 0.0
            return {name: zero for name in self.loss_names}

        # Every gt box of the batch is cropped and classified once (no grad), in the order of
        # torch.cat(gt_boxes); positive k uses row flat_gt[k]. Taking all G boxes, not only those with a
        # positive (torch.unique), keeps every shape known to the host: no read of the indices. A gt box
        # without a positive is rare (the students match each gt box to its best anchor, or add it to
        # the proposals) and costs only its teacher forward.
        device = images.device
        gt_image = batch_image_index([len(b) for b in gt_boxes], device)  # [G]
        first_row = torch.searchsorted(gt_image, torch.arange(len(gt_boxes), device=device))  # [B]
        pos_image_index = pos_image_index.to(device)
        flat_gt = first_row[pos_image_index] + pos_gt_index.to(device)  # [K] -> G
        losses: dict[str, Tensor] = {}
        if self.kd_cls and self.kd_cls_target == "label_smoothing":
            target = self._smoothed_target_logits(gt_classes, flat_gt, student_logits, mode)
            kd = _KD_CLS[mode](student_logits, target, self.temperature)
            losses["loss_kd_cls"] = self.kd_cls_weight * (kd / cls_div)
        if not (self.loc_pix or self.kd_loc or (self.kd_cls and self.kd_cls_target == "teacher")):
            return losses
        all_gt = torch.cat([b.to(device, images.dtype) for b in gt_boxes])  # [G, 4]
        # gt_image is in range by construction: no range check (on CPU, a read of its values)
        gt_crops = crop_boxes_roi_align(images, all_gt, gt_image, self.crop_size, check_index=False)
        gt_input = self.teacher.normalize(gt_crops, self.input_format)

        if self.kd_cls and self.kd_cls_target == "teacher":
            teacher_logits = self.teacher.logits(gt_input, chunk_size=self.chunk_size)[flat_gt]
            kd = _KD_CLS[mode](student_logits, teacher_logits, self.temperature)
            losses["loss_kd_cls"] = self.kd_cls_weight * (kd / cls_div)
        if self.loc_pix or self.kd_loc:
            if self.max_loc_positives_per_image is not None:
                keep = self._loc_subset(pos_image_index, self.max_loc_positives_per_image)
                flat_gt, pred_boxes, pos_image_index = flat_gt[keep], pred_boxes[keep], pos_image_index[keep]
                box_div = box_div * len(keep) / num_pos  # the subset's sum stands for K / |subset| of it
            losses.update(self._loc_losses(images, gt_crops, gt_input, flat_gt, pred_boxes, pos_image_index, box_div))
        return losses

    def _divisors(self, num_pos: int, detector_normalizer: DetectorNormalizer | None) -> tuple[float, float]:
        """What the sums over the positives are divided by, once: ``(N_cls, N_box)``, the student's
        normalisers; ``(K, K)`` with ``normalizer="positives"``."""
        if self.normalizer == "positives":
            return float(num_pos), float(num_pos)
        if detector_normalizer is None:
            raise ValueError(
                "DICODDistiller(normalizer='detector') needs the student's DetectorNormalizer in "
                "losses(..., detector_normalizer=...); pass it from the student, or build the distiller with "
                "normalizer='positives' for the paper's written 1/K."
            )
        cls, box = float(detector_normalizer.cls), float(detector_normalizer.box)
        if not (cls > 0 and box > 0):
            raise ValueError(f"the student's loss normalisers must be > 0, got {detector_normalizer}.")
        return cls, box

    def _smoothed_target_logits(self, gt_classes, flat_gt: Tensor, student_logits: Tensor, mode: str) -> Tensor:
        """[K, C] logits whose softmax (or per-class sigmoid) is ``(1-ε)·onehot + ε/C`` of each gt class."""
        if gt_classes is None:
            raise ValueError("the label-smoothing control needs gt_classes in DICODDistiller.losses().")
        num_classes = student_logits.shape[1] - (1 if mode == "softmax" else 0)
        classes = torch.cat([c.to(flat_gt.device) for c in gt_classes])[flat_gt]
        eps = self.label_smoothing
        probs = torch.full((len(classes), num_classes), eps / num_classes, device=student_logits.device)
        probs[torch.arange(len(classes)), classes.to(student_logits.device)] += 1.0 - eps
        probs = probs.clamp_min(1e-6)
        return probs.log() if mode == "softmax" else probs.log() - torch.log1p(-probs.clamp_max(1 - 1e-6))

    @staticmethod
    def _loc_subset(pos_image_index: Tensor, cap: int) -> Tensor:
        """Indices (ascending) of at most ``cap`` random positives per image; ``pos_image_index`` [K]."""
        keys = pos_image_index.to(torch.float64) + torch.rand(
            pos_image_index.shape, dtype=torch.float64, device=pos_image_index.device
        )
        order = torch.argsort(keys)  # grouped by image, random within an image
        sorted_image = pos_image_index[order]
        start = torch.searchsorted(sorted_image, sorted_image)  # first position of each one's image
        rank = torch.arange(len(order), device=order.device) - start
        # A host read that stays: the number kept, Σ_i min(K_i, cap), is data-dependent and sets the
        # teacher's batch. A fixed shape would pad to B·cap crops with weight 0, the teacher's work the
        # cap is there to save.
        return torch.sort(order[rank < cap]).values

    def _loc_losses(
        self,
        images: Tensor,
        gt_crops: Tensor,
        gt_input: Tensor,
        flat_gt: Tensor,
        pred_boxes: Tensor,
        pos_image_index: Tensor,
        divisor: float,
    ) -> dict[str, Tensor]:
        """Weighted L_loc_pix / L_kd_loc: sums over the positives given, divided by ``divisor``.

        ``gt_crops`` [G, 3, s, s] the crops of the batch's gt boxes on the 0-255 scale, ``gt_input`` the
        same normalised for the teacher, ``flat_gt`` [K] -> G the gt box of each positive. The gt maps
        are pooled BEFORE being gathered per positive (pooling is per sample, and re-pooling an h×h map
        to h×h is the identity), so memory stays O(G) for the gt branch.
        """
        pred_crops = crop_boxes_differentiable(
            images, pred_boxes.to(images.dtype), pos_image_index.to(images.device), self.crop_size
        )
        pred_feats = self.teacher.features(
            self.teacher.normalize(pred_crops, self.input_format), self.loc_layers
        )
        with torch.no_grad():
            gt_feats = self.teacher.features(gt_input, self.loc_layers)
            if self.loc_pix_space == "image":  # 0-255, mean-subtracted (the mean cancels in the L1)
                pred_feats[PIXELS], gt_feats[PIXELS] = pred_crops, gt_crops
            pools = dict(zip(self.loc_layers, self.loc_pools, strict=True))
            gt_feats = {n: F.adaptive_avg_pool2d(gt_feats[n], p)[flat_gt] for n, p in pools.items()}
        out = {}
        if self.loc_pix:
            pix = loc_pixel_loss(pred_feats[PIXELS], gt_feats[PIXELS], pools[PIXELS])
            out["loss_loc_pix"] = self.loc_weight * (pix / divisor)
        if self.kd_loc:
            layers = [n for n in self.loc_layers if n != PIXELS]
            feat = loc_feature_loss(pred_feats, gt_feats, layers, [pools[n] for n in layers])
            out["loss_kd_loc"] = self.loc_weight * (feat / divisor)
        return out

    def _check_inputs(self, images, gt_boxes, student_logits, pos_image_index, pos_gt_index, pred_boxes) -> int:
        """Validate shapes (and, with ``debug_checks``, the indices); return K."""
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"images must be float [B, 3, H, W] (0..255, unnormalised), got {tuple(images.shape)} "
                f"{images.dtype}; build them with dicod_d2.modeling.distiller.raw_images."
            )
        if len(gt_boxes) != images.shape[0]:
            raise ValueError(f"gt_boxes has {len(gt_boxes)} entries for a batch of {images.shape[0]} images.")
        for i, b in enumerate(gt_boxes):
            if b.dim() != 2 or b.shape[1] != 4:
                raise ValueError(f"gt_boxes[{i}] must be [G, 4] XYXY, got {tuple(b.shape)}.")
        k = student_logits.shape[0]
        for name, t, shape in (
            ("pos_image_index", pos_image_index, (k,)),
            ("pos_gt_index", pos_gt_index, (k,)),
            ("pred_boxes", pred_boxes, (k, 4)),
        ):
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape} (K = {k} positives), got {tuple(t.shape)}.")
        if k == 0 or not self.debug_checks:
            return k
        num_gt = torch.tensor([len(b) for b in gt_boxes], device=pos_image_index.device)
        if pos_image_index.min() < 0 or pos_image_index.max() >= len(gt_boxes):
            raise ValueError(f"pos_image_index out of range [0, {len(gt_boxes) - 1}].")
        bad = (pos_gt_index < 0) | (pos_gt_index >= num_gt[pos_image_index])
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} positives point to a gt box that does not exist in their image "
                "(pos_gt_index must index gt_boxes[pos_image_index])."
            )
        return k


class _Handoff:
    """The positives of one training forward, handed by the student's loss code to the mixin."""

    def __init__(self, gt_instances: list[Instances]):
        self.gt_instances = gt_instances
        self.positives: DistillationPositives | None = None


class DistillationStudent:
    """Mixin for a student ``nn.Module``: ``class MyStudent(DistillationStudent, Detector)``.

    ``self.distiller`` (a :class:`DICODDistiller` or None) lives in the instance ``__dict__``, not in
    the module tree: it is absent from ``state_dict()``, ``parameters()``, ``modules()`` and DDP,
    and ``model.train()`` never reaches the teacher. ``model.to(device)`` (any ``_apply``) also moves
    the teacher.

    In training with a distiller, :meth:`forward` runs the parent's forward, which must call
    :meth:`hand_positives` exactly once, and adds the distiller's losses over the positives handed
    (after the parent's own losses). Without a distiller, and at inference, it is the parent's
    forward. The student needs a ``backbone`` (its ``size_divisibility`` pads the raw batch as the
    normalised one) and ``device``.
    """

    @property
    def distiller(self) -> DICODDistiller | None:
        return self.__dict__.get("_dicod_distiller")

    @distiller.setter
    def distiller(self, value: DICODDistiller | None) -> None:
        if value is not None and not isinstance(value, DICODDistiller):
            raise TypeError(f"distiller must be a DICODDistiller or None, got {type(value).__name__}.")
        self.__dict__["_dicod_distiller"] = value

    def _apply(self, fn, *args, **kwargs):
        module = super()._apply(fn, *args, **kwargs)
        if self.distiller is not None and self.distiller.teacher is not None:
            self.distiller.teacher._apply(fn)
        return module

    def forward(self, batched_inputs: list[dict]):
        """The parent's forward; in training with a distiller, plus its losses.

        Args:
            batched_inputs: detectron2 inputs; each ``image`` is a [3, H, W] tensor, 0..255 in the
                model's ``input_format``, and in training ``instances`` holds the gt (``gt_boxes``
                XYXY pixels of that image, ``gt_classes``).
        Returns:
            training: ``{loss name: scalar}``, the parent's then the distiller's enabled terms
            (``loss_kd_cls``, ``loss_loc_pix``, ``loss_kd_loc``); inference: the parent's output.
        """
        if not self.training or self.distiller is None:
            return super().forward(batched_inputs)
        if any("instances" not in x for x in batched_inputs):
            raise ValueError(
                f"{type(self).__name__} training needs the ground truth: every input must have 'instances' "
                "(gt_boxes, gt_classes)."
            )
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        handoff = _Handoff(gt_instances)
        self.__dict__["_dicod_handoff"] = handoff
        try:
            losses = super().forward(batched_inputs)
        finally:
            del self.__dict__["_dicod_handoff"]
        pos = handoff.positives
        if pos is None:
            raise RuntimeError(f"{type(self).__name__}'s training forward did not call hand_positives().")
        losses.update(
            self.distiller.losses(
                raw_images(batched_inputs, self.backbone.size_divisibility, self.device),
                [g.gt_boxes.tensor for g in gt_instances],
                pos.logits,
                pos.image_index,
                pos.gt_index,
                pos.pred_boxes,
                mode=pos.mode,
                gt_classes=[g.gt_classes for g in gt_instances],
                detector_normalizer=pos.detector_normalizer,
            )
        )
        return losses

    def hand_positives(self, build: Callable[[list[Instances]], DistillationPositives]) -> None:
        """Called by the student's training code where its positives are known.

        ``build(gt_instances)`` (the batch's gt on the model's device) returns the
        :class:`DistillationPositives`; it runs only inside a distilling :meth:`forward`, so plain
        training pays nothing.
        """
        handoff = self.__dict__.get("_dicod_handoff")
        if handoff is None:
            return
        if handoff.positives is not None:
            raise RuntimeError(f"{type(self).__name__} handed its positives twice in one forward.")
        handoff.positives = build(handoff.gt_instances)


def raw_images(
    batched_inputs: Sequence[dict], size_divisibility: int = 0, device: torch.device | str | None = None
) -> Tensor:
    """Unnormalised padded batch [B, 3, H, W] float 0..255 from detectron2 ``batched_inputs``.

    Padded as ``ImageList.from_tensors`` pads the student's normalised batch (value 0 at the bottom
    and right, H and W the largest image sides rounded up to a multiple of ``size_divisibility``), so
    the sizes and box coordinates match; the padded size is computed from the images' shapes on the
    host (``from_tensors`` reads it back from a tensor).
    """
    images = [x["image"].to(device=device) for x in batched_inputs]
    height, width = (max(im.shape[d] for im in images) for d in (-2, -1))
    if size_divisibility > 1:
        height, width = (-(-side // size_divisibility) * size_divisibility for side in (height, width))
    batch = torch.zeros((len(images), *images[0].shape[:-2], height, width), dtype=torch.float32, device=images[0].device)
    for image, padded in zip(images, batch, strict=True):
        padded[..., : image.shape[-2], : image.shape[-1]].copy_(image)
    return batch


def batch_image_index(sizes: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """[Σ sizes] long: ``i`` repeated ``sizes[i]`` times, the image of each row of a batch whose
    images hold ``sizes`` rows each (built on ``device``: no host read, no host-to-device copy)."""
    return torch.cat([torch.full((n,), i, dtype=torch.long, device=device) for i, n in enumerate(sizes)])

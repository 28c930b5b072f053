"""SSD (Liu et al. 2016) as a detectron2 dense detector, with the DICOD distillation hook.

Training (per image): IoU ≥ 0.5 anchors are positive (detectron2 ``Matcher``), and every ground
truth also takes its best-overlapping anchor (if that IoU is > 0; when two ground truths share a best
anchor the later one keeps it). Classification is a softmax over C+1 classes (background last) with
3:1 hard negative mining; box regression is smooth-L1 on the positives' deltas
(``Box2BoxTransform(weights=(10, 10, 5, 5))`` = SSD's variances 0.1/0.2). Both losses are sums over
the batch divided by the number of positives in the batch (at least 1). An image without positives
keeps its ``neg_pos_ratio`` hardest negatives, as if it had one positive, so empty images still
teach the background.

Inference: softmax scores, per class score > 0.02, at most ``test_topk_candidates`` candidates per
level, class-wise NMS 0.45, the 200 best per image, boxes rescaled to the requested output size.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec, cat
from detectron2.modeling import Backbone
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes, ImageList, Instances, pairwise_iou
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn
from torchvision.ops import batched_nms

from ...errors import ConfigError
from ..distiller import (
    DetectorNormalizer,
    DICODDistiller,
    DistillationPositives,
    DistillationStudent,
)

__all__ = ["SSD", "SSDHead", "SSDPositives"]


class SSDHead(nn.Module):
    """One 3×3 class-score conv and one 3×3 box-delta conv per level.

    Args:
        input_shape: channels of each input level, finest first.
        num_classes: C foreground classes; the class output has C+1 scores, background last.
        num_anchors: anchors per location of each level (SSD300: 4, 6, 6, 6, 4, 4).
    """

    def __init__(self, *, input_shape: Sequence[ShapeSpec], num_classes: int, num_anchors: Sequence[int]):
        super().__init__()
        if len(input_shape) != len(num_anchors):
            raise ConfigError(
                f"model.head.num_anchors has {len(num_anchors)} entries but the backbone gives "
                f"{len(input_shape)} levels: give one per level."
            )
        self.num_classes = num_classes
        self.num_anchors = list(num_anchors)
        self.cls_score = nn.ModuleList(
            nn.Conv2d(s.channels, a * (num_classes + 1), 3, padding=1)
            for s, a in zip(input_shape, num_anchors, strict=True)
        )
        self.bbox_pred = nn.ModuleList(
            nn.Conv2d(s.channels, a * 4, 3, padding=1) for s, a in zip(input_shape, num_anchors, strict=True)
        )
        for conv in [*self.cls_score, *self.bbox_pred]:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level ℓ: logits [N, A_ℓ·(C+1), H_ℓ, W_ℓ] and deltas [N, A_ℓ·4, H_ℓ, W_ℓ]."""
        if len(features) != len(self.cls_score):
            raise ValueError(f"SSDHead expects {len(self.cls_score)} feature maps, got {len(features)}.")
        return (
            [conv(f) for conv, f in zip(self.cls_score, features, strict=True)],
            [conv(f) for conv, f in zip(self.bbox_pred, features, strict=True)],
        )


@dataclass
class SSDPositives:
    """The K positive anchors of a batch, the one source for box loss and distillation.

    image_index, anchor_index, gt_index: [K] long (gt_index indexes the image's gt boxes);
    labels: [K] long class; anchors, gt_boxes: [K, 4] XYXY pixels; logits: [K, C+1]; deltas: [K, 4].
    """

    image_index: Tensor
    anchor_index: Tensor
    gt_index: Tensor
    labels: Tensor
    anchors: Tensor
    gt_boxes: Tensor
    logits: Tensor
    deltas: Tensor

    def __len__(self) -> int:
        return self.image_index.numel()


class SSD(DistillationStudent, DenseDetector):
    """SSD meta-architecture (see the module docstring).

    Args:
        backbone: a detectron2 ``Backbone`` (e.g. ``VGG16SSD``).
        head: an :class:`SSDHead` over ``head_in_features``.
        anchor_generator: a detectron2 anchor generator (e.g. ``SSDAnchorGenerator``) whose
            per-level anchor counts match the head's.
        box2box_transform: box coder, SSD: ``Box2BoxTransform(weights=(10, 10, 5, 5))``.
        num_classes: C foreground classes.
        pixel_mean, pixel_std: per-channel normalisation in ``input_format`` order, 0..255 scale.
        input_format: "BGR" or "RGB", channel order of ``batched_inputs[i]["image"]``.
        head_in_features: backbone outputs fed to the head, finest first (default: all, by stride).
        anchor_matcher: IoU matcher, labels 0 = background, 1 = positive, -1 = ignored.
        neg_pos_ratio: hard negatives kept per positive.
        smooth_l1_beta: beta of the box smooth-L1 loss (pixels of delta space).
        test_score_thresh, test_topk_candidates, test_nms_thresh, max_detections_per_image: inference.
        distiller: optional :class:`DICODDistiller`; in training its losses over the positive anchors
            are added to the loss dict. Kept outside the module tree.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        head: SSDHead,
        anchor_generator: DefaultAnchorGenerator,
        box2box_transform: Box2BoxTransform,
        num_classes: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        input_format: str = "BGR",
        head_in_features: Sequence[str] | None = None,
        anchor_matcher: Matcher | None = None,
        neg_pos_ratio: int = 3,
        smooth_l1_beta: float = 1.0,
        test_score_thresh: float = 0.02,
        test_topk_candidates: int = 1000,
        test_nms_thresh: float = 0.45,
        max_detections_per_image: int = 200,
        distiller: DICODDistiller | None = None,
    ):
        super().__init__(
            backbone, head, None if head_in_features is None else list(head_in_features),
            pixel_mean=pixel_mean, pixel_std=pixel_std,
        )
        if input_format not in ("BGR", "RGB"):
            raise ConfigError(f"model.input_format={input_format!r}: must be 'BGR' or 'RGB'.")
        if list(anchor_generator.num_anchors) != list(head.num_anchors):
            raise ConfigError(
                f"the anchor generator has {anchor_generator.num_anchors} anchors per location but "
                f"model.head.num_anchors={head.num_anchors}: set it to {anchor_generator.num_anchors} "
                "(2 + 2 x the aspect ratios of each level)."
            )
        if head.num_classes != num_classes:
            raise ConfigError(f"model.head.num_classes={head.num_classes} but model.num_classes={num_classes}: "
                              "set them equal.")
        self.anchor_generator = anchor_generator
        self.box2box_transform = box2box_transform
        self.anchor_matcher = anchor_matcher or Matcher([0.5], [0, 1], allow_low_quality_matches=False)
        self.num_classes = num_classes
        self.input_format = input_format
        self.neg_pos_ratio = neg_pos_ratio
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_topk_candidates = test_topk_candidates
        self.test_nms_thresh = test_nms_thresh
        self.max_detections_per_image = max_detections_per_image
        if distiller is not None and distiller.input_format != input_format:
            raise ConfigError(
                f"model.distiller.input_format={distiller.input_format!r} but the SSD reads "
                f"{input_format!r} images (model.input_format): set them equal."
            )
        self.distiller = distiller

    def forward(self, batched_inputs: list[dict]):
        """detectron2 ``batched_inputs`` → loss dict (training) or ``[{"instances": Instances}]``."""
        if self.training and any("instances" not in x for x in batched_inputs):
            raise ValueError("SSD training needs 'instances' (gt_boxes, gt_classes) in every input.")
        return super().forward(batched_inputs)

    def forward_training(
        self,
        images: ImageList,
        features: list[Tensor],
        predictions: tuple[list[Tensor], list[Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, Tensor]:
        pred_logits, pred_deltas = self._transpose_dense_predictions(
            predictions, [self.num_classes + 1, 4]
        )
        anchors = self.anchor_generator(features)
        gt_labels, matched_idxs = self.label_anchors(anchors, gt_instances)
        return self.losses(anchors, pred_logits, pred_deltas, gt_labels, matched_idxs, gt_instances)

    @torch.no_grad()
    def label_anchors(
        self, anchors: list[Boxes], gt_instances: list[Instances]
    ) -> tuple[Tensor, Tensor]:
        """Assign every anchor of every image.

        Returns:
            gt_labels: [B, R] long, class in [0, C) for positives, C for background, -1 ignored.
            matched_idxs: [B, R] long, index of the matched gt box in its image (meaningful for
                positives only).
        """
        anchors = Boxes.cat(anchors)
        labels, matches = [], []
        for gt in gt_instances:
            iou = pairwise_iou(gt.gt_boxes, anchors)  # [G, R]
            matched_idxs, anchor_labels = self.anchor_matcher(iou)
            if len(gt) > 0:
                best_iou, best_anchor = iou.max(dim=1)
                forced = best_iou > 0
                matched_idxs[best_anchor[forced]] = torch.nonzero(forced).squeeze(1)
                anchor_labels[best_anchor[forced]] = 1
                labels_i = gt.gt_classes[matched_idxs].clone()
            else:
                labels_i = torch.zeros_like(matched_idxs)
            labels_i[anchor_labels == 0] = self.num_classes
            labels_i[anchor_labels == -1] = -1
            labels.append(labels_i)
            matches.append(matched_idxs)
        return torch.stack(labels), torch.stack(matches)

    def positives(
        self,
        anchors: Tensor,
        pred_logits: Tensor,
        pred_deltas: Tensor,
        gt_labels: Tensor,
        matched_idxs: Tensor,
        gt_instances: list[Instances],
    ) -> SSDPositives:
        """Gather the positive anchors. anchors [R, 4]; pred_logits [B, R, C+1]; pred_deltas
        [B, R, 4]; gt_labels, matched_idxs [B, R] (see :meth:`label_anchors`)."""
        pos_mask = (gt_labels >= 0) & (gt_labels != self.num_classes)
        # a host read (K is data-dependent), which SSD's own losses need as well as the distiller
        image_index, anchor_index = pos_mask.nonzero(as_tuple=True)
        gt_index = matched_idxs[image_index, anchor_index]
        num_gt = torch.tensor([len(g) for g in gt_instances], device=anchors.device)
        offsets = torch.cumsum(num_gt, 0) - num_gt
        all_gt = cat([g.gt_boxes.tensor for g in gt_instances]).reshape(-1, 4)
        return SSDPositives(
            image_index=image_index,
            anchor_index=anchor_index,
            gt_index=gt_index,
            labels=gt_labels[image_index, anchor_index],
            anchors=anchors[anchor_index],
            gt_boxes=all_gt[offsets[image_index] + gt_index],
            logits=pred_logits[image_index, anchor_index],
            deltas=pred_deltas[image_index, anchor_index],
        )

    def hard_negatives(self, ce: Tensor, gt_labels: Tensor) -> Tensor:
        """[B, R] bool mask of the kept negatives: per image the ``neg_pos_ratio · max(P, 1)``
        background anchors with the largest cross-entropy ``ce`` [B, R] (P = its positives)."""
        is_neg = gt_labels == self.num_classes
        num_pos = ((gt_labels >= 0) & ~is_neg).sum(dim=1)
        num_neg = torch.minimum(self.neg_pos_ratio * num_pos.clamp(min=1), is_neg.sum(dim=1))
        neg_ce = ce.detach().masked_fill(~is_neg, -1.0)
        order = neg_ce.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        return (rank < num_neg[:, None]) & is_neg

    def losses(
        self,
        anchors: list[Boxes],
        pred_logits: list[Tensor],
        pred_deltas: list[Tensor],
        gt_labels: Tensor,
        matched_idxs: Tensor,
        gt_instances: list[Instances],
    ) -> dict[str, Tensor]:
        """SSD losses; hands the positive anchors to the distiller.

        Args:
            anchors: per level Boxes [R_ℓ, 4]; pred_logits / pred_deltas: per level [B, R_ℓ, C+1] /
                [B, R_ℓ, 4]; gt_labels, matched_idxs: [B, R] from :meth:`label_anchors`.
        Returns:
            ``loss_cls``, ``loss_box_reg``, scalars. The distiller's positives are these positive
            anchors: softmax logits [K, C+1], boxes decoded from the anchors, and both losses'
            normaliser (the number of positives, at least 1).
        """
        anchors_t = Boxes.cat(anchors).tensor
        logits, deltas = cat(pred_logits, dim=1), cat(pred_deltas, dim=1)
        pos = self.positives(anchors_t, logits, deltas, gt_labels, matched_idxs, gt_instances)
        normalizer = max(len(pos), 1)
        get_event_storage().put_scalar("num_pos_anchors", len(pos) / len(gt_instances))

        ce = F.cross_entropy(
            logits.flatten(0, 1).float(), gt_labels.clamp(min=0).flatten(), reduction="none"
        ).view_as(gt_labels)
        neg_mask = self.hard_negatives(ce, gt_labels)
        loss_cls = F.cross_entropy(pos.logits.float(), pos.labels, reduction="sum") + ce[neg_mask].sum()
        target_deltas = self.box2box_transform.get_deltas(pos.anchors, pos.gt_boxes)
        loss_box_reg = F.smooth_l1_loss(
            pos.deltas.float(), target_deltas, beta=self.smooth_l1_beta, reduction="sum"
        )
        losses = {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}
        self.hand_positives(
            lambda _: DistillationPositives(
                pos.logits, pos.image_index, pos.gt_index,
                self.box2box_transform.apply_deltas(pos.deltas, pos.anchors), mode="softmax",
                detector_normalizer=DetectorNormalizer(cls=normalizer, box=normalizer),
            )
        )
        return losses

    def forward_inference(
        self, images: ImageList, features: list[Tensor], predictions: tuple[list[Tensor], list[Tensor]]
    ) -> list[Instances]:
        """Detections per image in the network input's coordinates (rescaled by ``forward``)."""
        pred_logits, pred_deltas = self._transpose_dense_predictions(
            predictions, [self.num_classes + 1, 4]
        )
        anchors = self.anchor_generator(features)
        results = []
        for i, image_size in enumerate(images.image_sizes):
            scores = [x[i].softmax(dim=-1)[:, : self.num_classes] for x in pred_logits]
            pred = self._decode_multi_level_predictions(
                anchors, scores, [x[i] for x in pred_deltas],
                self.test_score_thresh, self.test_topk_candidates, image_size,
            )
            keep = batched_nms(
                pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh
            )
            results.append(pred[keep[: self.max_detections_per_image]])
        return results

"""RetinaNet student with DICOD distillation: sigmoid KD_cls + KD_loc on the positive anchors (Guo,
Alvarez, Salzmann, "Distilling Image Classifiers in Object Detectors", NeurIPS 2021, Section 3).

:class:`DICODRetinaNet` is detectron2's :class:`~detectron2.modeling.meta_arch.RetinaNet` plus an
optional :class:`~dicod_d2.modeling.distiller.DICODDistiller`. Without a distiller, and always at
inference, it runs RetinaNet's own code; its ``state_dict`` keys are RetinaNet's (the distiller and
its teacher live outside the module tree), so checkpoints load either way.

In training with a distiller, the positive anchors of detectron2's ``label_anchors`` (IoU ≥ 0.5 or
best match, label neither background nor ignored) take:

- KD_cls with ``mode="sigmoid"`` on their [K, C] class logits (C per-class sigmoid logits);
- L_loc_pix / KD_loc on their decoded predicted boxes ``box2box_transform.apply_deltas(deltas,
  anchors)`` ([K, 4] XYXY absolute pixels of the padded input batch), against their matched gt box.
"""

from __future__ import annotations

from detectron2.layers import cat
from detectron2.modeling.meta_arch import RetinaNet
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ...errors import ConfigError
from ..distiller import (
    DetectorNormalizer,
    DICODDistiller,
    DistillationPositives,
    DistillationStudent,
)

__all__ = ["DICODRetinaNet", "matched_gt_index"]


def matched_gt_index(
    matched_boxes: Tensor, image_index: Tensor, gt_boxes: list[Tensor], check: bool = False
) -> Tensor:
    """Index, within its image, of the gt box each positive anchor was matched to.

    detectron2's ``RetinaNet.label_anchors`` returns each anchor's matched gt box as a copy
    (``gt_boxes[matched_idxs]``), so the index is recovered exactly by equality. When an image holds
    several identical boxes the first is returned: its crop, hence every DICOD term, is the same.

    Args:
        matched_boxes: [K, 4] XYXY, the matched gt box of each positive (from ``label_anchors``).
        image_index: [K] long, image of each positive.
        gt_boxes: B tensors [G_i, 4] XYXY, the gt boxes of each image.
        check: raise if a matched box is not among its image's gt boxes (a device synchronisation:
            for debugging, see ``DICODDistiller(debug_checks=...)``).
    Returns:
        [K] long, ``j`` such that ``gt_boxes[image_index[k]][j] == matched_boxes[k]``.
    """
    num_gt = max((len(b) for b in gt_boxes), default=0)
    if len(matched_boxes) == 0 or num_gt == 0:
        return image_index.new_zeros(len(matched_boxes))
    padded = matched_boxes.new_full((len(gt_boxes), num_gt, 4), float("nan"))
    for i, b in enumerate(gt_boxes):
        padded[i, : len(b)] = b
    equal = (padded[image_index] == matched_boxes[:, None, :]).all(dim=2)  # [K, G_max]
    if check and not equal.any(dim=1).all():
        raise ValueError("a positive anchor's matched box is not among its image's gt boxes.")
    return equal.int().argmax(dim=1)


class DICODRetinaNet(DistillationStudent, RetinaNet):
    """detectron2 RetinaNet + optional DICOD distiller (see the module docstring).

    Args:
        distiller: a :class:`DICODDistiller` built with this model's ``input_format``, or None
            (plain RetinaNet). Kept outside the module tree.
        **kwargs: detectron2 ``RetinaNet`` arguments (backbone, head, head_in_features,
            anchor_generator, box2box_transform, anchor_matcher, num_classes, pixel_mean,
            pixel_std, input_format, focal loss and inference settings).

    Training returns RetinaNet's ``loss_cls``, ``loss_box_reg`` plus the distiller's enabled terms
    (``loss_kd_cls``, ``loss_loc_pix``, ``loss_kd_loc``), each a scalar.
    """

    def __init__(self, *, distiller: DICODDistiller | None = None, **kwargs):
        super().__init__(**kwargs)
        if distiller is not None and distiller.input_format != self.input_format:
            raise ConfigError(
                f"model.distiller.input_format={distiller.input_format!r} but the RetinaNet reads "
                f"{self.input_format!r} images (model.input_format): set them equal."
            )
        self.distiller = distiller

    def losses(self, anchors, pred_logits, gt_labels, pred_deltas, gt_boxes):
        """RetinaNet's losses; hands the positive anchors to the distiller (see :meth:`positives`)."""
        losses = super().losses(anchors, pred_logits, gt_labels, pred_deltas, gt_boxes)
        self.hand_positives(
            lambda gt_instances: self.positives(anchors, pred_logits, pred_deltas, gt_labels, gt_boxes, gt_instances)
        )
        return losses

    def positives(
        self,
        anchors: list[Boxes],
        pred_logits: list[Tensor],
        pred_deltas: list[Tensor],
        gt_labels: list[Tensor],
        matched_gt_boxes: list[Tensor],
        gt_instances: list[Instances],
    ) -> DistillationPositives:
        """The K positive anchors of the batch (label neither background nor ignored).

        Args:
            anchors: per level Boxes [R_ℓ, 4]; pred_logits / pred_deltas: per level [B, R_ℓ, C] / [B, R_ℓ, 4].
            gt_labels, matched_gt_boxes: B tensors [R] / [R, 4] from ``label_anchors``.
            gt_instances: B Instances with ``gt_boxes``.
        Returns:
            sigmoid logits [K, C], predicted boxes decoded from the anchors; RetinaNet divides both
            of its losses by ``loss_normalizer`` (a moving average of the positive anchors, updated
            by :meth:`losses` before this is called): that is the normaliser.
        """
        labels = cat(gt_labels).view(len(gt_labels), -1)  # [B, R]
        pos_mask = (labels >= 0) & (labels != self.num_classes)
        # The one host read of DICOD here (RetinaNet's own losses only sum the mask): K, the number of
        # positives, is data-dependent and sets the teacher's batch. A fixed shape would pad to B·R
        # anchors and run the teacher on the padding.
        image_index, anchor_index = pos_mask.nonzero(as_tuple=True)
        logits = cat(pred_logits, dim=1)[image_index, anchor_index]  # [K, C]
        deltas = cat(pred_deltas, dim=1)[image_index, anchor_index]  # [K, 4]
        pos_anchors = Boxes.cat(anchors).tensor[anchor_index]
        pred_boxes = self.box2box_transform.apply_deltas(deltas, pos_anchors)  # [K, 4]
        gt_boxes = [g.gt_boxes.tensor for g in gt_instances]
        matched = cat(matched_gt_boxes).view(len(gt_labels), -1, 4)[image_index, anchor_index]
        gt_index = matched_gt_index(matched, image_index, gt_boxes, check=self.distiller.debug_checks)
        return DistillationPositives(
            logits, image_index, gt_index, pred_boxes, mode="sigmoid",
            detector_normalizer=DetectorNormalizer(cls=self.loss_normalizer, box=self.loss_normalizer),
        )

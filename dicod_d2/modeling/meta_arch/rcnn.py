"""Faster R-CNN student with DICOD distillation on the box head (method.md §5).

The distillation terms attach to the positive sampled proposals of the second stage
(:class:`~dicod_d2.modeling.roi_heads.DICODROIHeads`): KD_cls on the box head's softmax over C+1
classes, and the localization terms on the gt class's box decoded from each proposal. The RPN is
class-agnostic and is trained as in the baseline.
"""
from __future__ import annotations

from typing import Dict, List

from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.utils.events import get_event_storage
from torch import Tensor

from ...errors import ConfigError
from ..distiller import DetectorNormalizer, DICODDistiller, DistillationStudent, raw_images
from ..roi_heads import DICODROIHeads

__all__ = ["DICODGeneralizedRCNN"]


class DICODGeneralizedRCNN(DistillationStudent, GeneralizedRCNN):
    """detectron2's ``GeneralizedRCNN`` plus the DICOD losses of an optional frozen-teacher distiller.

    Args:
        distiller: a :class:`DICODDistiller` (kept outside the module tree: the ``state_dict`` has
            exactly ``GeneralizedRCNN``'s keys), or None for the plain detector. With a distiller,
            ``roi_heads`` must be a :class:`DICODROIHeads` and ``input_format`` must be the
            distiller's.
        **kwargs: the arguments of ``GeneralizedRCNN``.

    Training returns the baseline losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``,
    ``loss_box_reg``) plus the distiller's enabled terms (``loss_kd_cls``, ``loss_loc_pix``,
    ``loss_kd_loc``). Inference is ``GeneralizedRCNN.inference`` and never uses the teacher.
    """

    def __init__(self, *, distiller: DICODDistiller | None = None, **kwargs):
        super().__init__(**kwargs)
        if distiller is not None:
            if not isinstance(self.roi_heads, DICODROIHeads):
                raise ConfigError(
                    f"a DICOD distiller needs roi_heads to be a DICODROIHeads, got "
                    f"{type(self.roi_heads).__name__}: set model.roi_heads._target_ to "
                    "dicod_d2.modeling.roi_heads.DICODROIHeads."
                )
            if distiller.input_format != self.input_format:
                raise ConfigError(
                    f"model.distiller.input_format={distiller.input_format!r} but the model reads "
                    f"{self.input_format!r} images (model.input_format): set them equal."
                )
        self.distiller = distiller

    def forward(self, batched_inputs: List[dict]):
        """``GeneralizedRCNN.forward``; in training with a distiller, adds its losses.

        Args:
            batched_inputs: detectron2 inputs; each ``image`` is a [3, H, W] tensor, 0..255 in
                ``input_format``, and in training ``instances`` holds the gt (``gt_boxes`` XYXY
                pixels of that image, ``gt_classes``).
        Returns:
            training: ``{loss name: scalar}``; inference: as ``GeneralizedRCNN``.
        """
        if not self.training or self.distiller is None:
            return super().forward(batched_inputs)
        if "instances" not in batched_inputs[0]:
            raise ValueError("DICOD training needs the ground truth: every input must have 'instances'.")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        if self.proposal_generator is not None:
            proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        else:
            proposals = [x["proposals"].to(self.device) for x in batched_inputs]
            proposal_losses = {}
        sampled, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        if self.vis_period > 0 and get_event_storage().iter % self.vis_period == 0:
            self.visualize_training(batched_inputs, proposals)

        losses: Dict[str, Tensor] = {**detector_losses, **proposal_losses}
        pos = self.roi_heads.positives(sampled)
        # detectron2's box head averages loss_cls and loss_box_reg over every sampled RoI
        num_sampled = sum(len(p) for p in sampled)
        losses.update(
            self.distiller.losses(
                raw_images(batched_inputs, self.backbone.size_divisibility, self.device),
                [x.gt_boxes.tensor for x in gt_instances],
                pos.class_logits,
                pos.image_index,
                pos.gt_index,
                pos.pred_boxes,
                mode="softmax",
                gt_classes=[x.gt_classes for x in gt_instances],
                normalizer=DetectorNormalizer(cls=max(num_sampled, 1), box=max(num_sampled, 1)),
            )
        )
        return losses

"""ROI heads of the DICOD Faster R-CNN student (Guo, Alvarez, Salzmann, "Distilling Image Classifiers
in Object Detectors", NeurIPS 2021, Section 3).

:class:`DICODROIHeads` is detectron2's ``StandardROIHeads`` that, in training, also returns what the
distiller needs about each sampled proposal: its box-head outputs and the index of its matched
ground-truth box. It stores them as fields of the sampled proposals that ``forward`` returns (no
module state, nothing carried from one iteration to the next); :meth:`DICODROIHeads.positives`
gathers the positives of a batch from them. Inference is exactly ``StandardROIHeads``'.
"""
from __future__ import annotations

from typing import Dict, List

import torch
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.structures import Instances
from torch import Tensor

from ..errors import ConfigError
from .distiller import DetectorNormalizer, DistillationPositives, batch_image_index

__all__ = ["DICODROIHeads"]


class DICODROIHeads(StandardROIHeads):
    """``StandardROIHeads`` whose training output exposes the box head's positives to DICOD.

    In training, every sampled proposal returned by ``forward`` carries, besides detectron2's
    ``gt_classes`` / ``gt_boxes``:

    - ``gt_index`` [S_i] long: index of the matched gt box in ``targets[i]`` (only in images that
      have gt boxes; meaningful for positives),
    - ``class_logits`` [S_i, C+1] and ``box_deltas`` [S_i, 4·C] (or [S_i, 4] class-agnostic): the box
      predictor's outputs, with autograd graph.

    Losses and inference are those of ``StandardROIHeads``. ``train_on_pred_boxes`` is not supported
    (it replaces the proposal boxes that the decoded boxes are relative to).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.train_on_pred_boxes:
            raise ConfigError(
                "model.roi_heads.train_on_pred_boxes=True is not supported by DICODROIHeads (the "
                "DICOD predicted boxes are decoded from the sampled proposals): set it to False."
            )

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: List[Instances], targets: List[Instances]
    ) -> List[Instances]:
        """detectron2's sampling, plus a ``gt_index`` field on the sampled proposals.

        detectron2 copies every ``gt_*`` field of the targets to the proposals through the matched
        gt index, so a ``gt_index = arange(G_i)`` field on (shallow copies of) the targets comes out
        as each proposal's matched gt index. The caller's ``targets`` are not modified.
        """
        indexed = []
        for t in targets:
            t = Instances(t.image_size, **t.get_fields())
            t.gt_index = torch.arange(len(t), device=t.gt_boxes.device)
            indexed.append(t)
        return super().label_and_sample_proposals(proposals, indexed)

    def _forward_box(self, features: Dict[str, Tensor], proposals: List[Instances]):
        """As ``StandardROIHeads._forward_box``; in training also sets ``class_logits`` and
        ``box_deltas`` on ``proposals`` (in place)."""
        if not self.training:
            return super()._forward_box(features, proposals)
        features = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(features, [x.proposal_boxes for x in proposals])
        predictions = self.box_predictor(self.box_head(box_features))
        losses = self.box_predictor.losses(predictions, proposals)
        class_logits, box_deltas = predictions
        sizes = [len(p) for p in proposals]
        for p, logits, deltas in zip(
            proposals, class_logits.split(sizes), box_deltas.split(sizes), strict=True
        ):
            p.class_logits = logits
            p.box_deltas = deltas
        return losses

    def positives(self, proposals: List[Instances]) -> DistillationPositives:
        """Gather the positives of the training output ``proposals`` of :meth:`forward`.

        Args:
            proposals: per image, the sampled proposals with ``gt_classes``, ``class_logits``,
                ``box_deltas`` (and ``gt_index`` where the image has gt boxes).
        Returns:
            the K proposals whose gt class is in [0, C): softmax logits [K, C+1], and as predicted
            box the class-specific box of the gt class, decoded from the proposal with the box
            predictor's ``box2box_transform`` (the paper, Section 3). detectron2's box head divides
            ``loss_cls`` and ``loss_box_reg`` by the number of sampled RoIs of the batch: that is
            the normaliser.
        """
        sizes = [len(p) for p in proposals]
        gt_classes = torch.cat([p.gt_classes for p in proposals])  # [R], R sampled proposals
        is_pos = (gt_classes >= 0) & (gt_classes < self.num_classes)
        # The one host read: K, the number of positives, is data-dependent and sets the teacher's
        # batch (a fixed shape would pad to R rows and run the teacher on the padding). Every field
        # is then gathered with these indices, so neither gathering nor its backward reads again.
        (rows,) = torch.nonzero(is_pos, as_tuple=True)  # [K]
        logits = torch.cat([p.class_logits for p in proposals])[rows]
        deltas = torch.cat([p.box_deltas for p in proposals])[rows]
        classes = gt_classes[rows]
        boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])[rows]
        # images without gt have no positive and no gt_index field
        gt_index = torch.cat(
            [p.gt_index if p.has("gt_index") else p.gt_classes.new_zeros(len(p), dtype=torch.long)
             for p in proposals]
        )[rows]
        image_index = batch_image_index(sizes, gt_classes.device)[rows]
        if deltas.shape[1] > 4:  # class-specific regression: the gt class's 4 deltas
            per_class = deltas.view(len(deltas), deltas.shape[1] // 4, 4)
            deltas = per_class[torch.arange(len(deltas), device=deltas.device), classes]
        pred_boxes = self.box_predictor.box2box_transform.apply_deltas(deltas, boxes)
        num_sampled = max(sum(sizes), 1)
        return DistillationPositives(
            logits, image_index, gt_index, pred_boxes, mode="softmax",
            detector_normalizer=DetectorNormalizer(cls=num_sampled, box=num_sampled),
        )

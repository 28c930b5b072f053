"""One student as a plain-tensor detector: uint8 image in, boxes / scores / classes out.

:class:`StudentDetector` is the single inference path shared by ``tools/predict.py`` (PyTorch) and
the ONNX export (``dicod_d2.export``): it does the test-time resize of the student's data config
inside the module (``F.interpolate``, bilinear, no antialiasing), then runs the student's own
``forward`` in eval mode (normalisation, padding to ``size_divisibility``, backbone, heads and
the student's own post-processing with NMS), which rescales the boxes to the input image.

The resize differs slightly from detectron2's data loader, which resizes with PIL: compare
PyTorch and ONNX Runtime through this module, never against the data loader's pipeline.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import detectron2.data.transforms as T
import torch
import torch.nn.functional as F
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes, Instances
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["InGraphResize", "StudentDetector", "resize_from_augmentations"]


@dataclass(frozen=True)
class InGraphResize:
    """The test-time resize of a student, computed from the input size inside the graph.

    Either ``fixed`` = (height, width) (``T.Resize``, aspect ratio ignored) or ``short_edge`` with
    ``max_size`` (``T.ResizeShortestEdge`` with one test length); neither = no resize.
    """

    fixed: tuple[int, int] | None = None
    short_edge: int | None = None
    max_size: int | None = None

    def output_size(self, height, width):
        """Network input size for an image of ``height`` × ``width`` (ints, or 0-dim tensors when
        traced); detectron2's ``ResizeShortestEdge.get_output_shape`` rule."""
        if self.fixed is not None:
            return self.fixed
        if self.short_edge is None:
            return height, width
        h, w = (torch.as_tensor(v, dtype=torch.float32) for v in (height, width))
        scale = self.short_edge / torch.minimum(h, w)
        if self.max_size is not None:
            scale = torch.minimum(scale, self.max_size / torch.maximum(h, w))
        new_h, new_w = torch.floor(h * scale + 0.5).long(), torch.floor(w * scale + 0.5).long()
        if torch.jit.is_tracing():
            return new_h, new_w
        return int(new_h), int(new_w)

    def __call__(self, image: Tensor) -> Tensor:
        """[3, H, W] float 0..255 → [3, H', W'] float 0..255 (not rounded: rounding would turn the
        runtimes' last-bit differences into whole grey levels)."""
        if self.fixed is None and self.short_edge is None:
            return image
        size = self.output_size(image.shape[-2], image.shape[-1])
        return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def resize_from_augmentations(augmentations: Sequence) -> InGraphResize:
    """The :class:`InGraphResize` equal to a student's test augmentations (instantiated).

    Raises:
        ValueError: an augmentation other than one ``T.Resize`` or ``T.ResizeShortestEdge`` (with
            a single test length), which cannot be expressed in the exported graph.
    """
    augs = list(augmentations)
    if not augs:
        return InGraphResize()
    if len(augs) == 1 and isinstance(augs[0], T.Resize):
        return InGraphResize(fixed=tuple(int(v) for v in augs[0].shape))
    if len(augs) == 1 and isinstance(augs[0], T.ResizeShortestEdge):
        lengths = sorted(set(augs[0].short_edge_length))  # ResizeShortestEdge(800) holds (800, 800)
        if len(lengths) != 1:
            raise ConfigError(f"test-time ResizeShortestEdge must have one length, got {lengths}.")
        max_size = augs[0].max_size
        return InGraphResize(short_edge=int(lengths[0]),
                             max_size=None if max_size >= 2**31 - 1 else int(max_size))
    names = ", ".join(type(a).__name__ for a in augs)
    raise ConfigError(
        f"test augmentations [{names}] cannot be done inside the exported graph: use no augmentation, "
        "one Resize or one ResizeShortestEdge in dataloader.test.mapper.augmentations."
    )


def _decode_level_traceable(
    self: DenseDetector, anchors, pred_scores: Tensor, pred_deltas: Tensor,
    score_thresh: float, topk_candidates: int, image_size,
) -> Instances:
    """``DenseDetector._decode_per_level_predictions`` without its data-dependent Python ``min``:
    slicing the sorted candidates to ``topk_candidates`` keeps the same ones (a slice stops at the
    end), and the exported graph keeps the count dynamic. pred_scores [R, C], pred_deltas [R, 4]."""
    keep = pred_scores > score_thresh
    scores = pred_scores[keep]
    candidates = torch.nonzero(keep)  # [K, 2] (anchor, class)
    scores, order = scores.sort(descending=True)
    scores = scores[:topk_candidates]
    anchor_idxs, class_idxs = candidates[order[:topk_candidates]].unbind(dim=1)
    boxes = self.box2box_transform.apply_deltas(pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs])
    return Instances(image_size, pred_boxes=Boxes(boxes), scores=scores, pred_classes=class_idxs)


def _predict_boxes_traceable(self, predictions, proposals):
    """``FastRCNNOutputLayers.predict_boxes`` that leaves the boxes of one image unsplit.

    detectron2 splits the boxes of a batch by ``len()`` of each image's proposals, a Python int
    that a traced graph freezes (300 proposals on the traced image: a small image with fewer
    proposals then fails in ONNX Runtime). One image needs no split. Returns per image [R_i, 4·C]
    (or [R_i, 4]) XYXY pixels of the resized input.
    """
    if len(proposals) != 1:
        return type(self).predict_boxes(self, predictions, proposals)
    _, proposal_deltas = predictions
    return (self.box2box_transform.apply_deltas(proposal_deltas, proposals[0].proposal_boxes.tensor),)


def _predict_probs_traceable(self, predictions, proposals):
    """``FastRCNNOutputLayers.predict_probs`` that leaves the scores of one image unsplit (see
    :func:`_predict_boxes_traceable`). Returns per image [R_i, C+1] probabilities."""
    if len(proposals) != 1:
        return type(self).predict_probs(self, predictions, proposals)
    scores, _ = predictions
    return (F.softmax(scores, dim=-1),)


class StudentDetector(nn.Module):
    """A student in eval mode behind a plain-tensor interface (see the module docstring).

    Args:
        model: a detectron2 meta-architecture in eval mode without a distiller
            (``GeneralizedRCNN``, ``RetinaNet``, ``SSD`` and their DICOD subclasses).
        resize: the student's test-time resize.
        input_format: channel order of the images ("BGR" or "RGB"), the model's ``input_format``.
    """

    def __init__(self, model: nn.Module, resize: InGraphResize, input_format: str):
        super().__init__()
        self.model = model
        self.resize = resize
        self.input_format = input_format
        self.train(False)  # for good: inference only (torch.onnx.export restores this mode)
        if isinstance(model, DenseDetector):
            # an instance attribute, so the model class (and training) is untouched
            model._decode_per_level_predictions = _decode_level_traceable.__get__(model)
        box_predictor = getattr(getattr(model, "roi_heads", None), "box_predictor", None)
        if box_predictor is not None:  # Faster R-CNN: instance attributes too
            box_predictor.predict_boxes = _predict_boxes_traceable.__get__(box_predictor)
            box_predictor.predict_probs = _predict_probs_traceable.__get__(box_predictor)

    def _inputs(self, image: Tensor) -> dict:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected one image [3, H, W], got shape {tuple(image.shape)}.")
        h, w = image.shape[-2], image.shape[-1]
        return {"image": self.resize(image.float()), "height": h, "width": w}

    @staticmethod
    def _outputs(instances: Instances) -> tuple[Tensor, Tensor, Tensor]:
        return instances.pred_boxes.tensor, instances.scores, instances.pred_classes

    @torch.no_grad()
    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """image: [3, H, W] uint8 in ``input_format`` order, any H, W.

        Returns:
            boxes [N, 4] float32, XYXY pixels of ``image``; scores [N] float32; classes [N] int64
            (contiguous class index of the dataset metadata's ``thing_classes``).
        """
        return self._outputs(self.model([self._inputs(image)])[0]["instances"])

    @torch.no_grad()
    def predict_batch(self, images: Sequence[Tensor]) -> list[tuple[Tensor, Tensor, Tensor]]:
        """:meth:`forward` on several images in one batch (padded to a common size, as detectron2
        batches them; detections can differ slightly from one image at a time near the padding)."""
        outputs = self.model([self._inputs(im) for im in images])
        return [self._outputs(o["instances"]) for o in outputs]

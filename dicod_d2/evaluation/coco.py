"""detectron2's COCO evaluation without compiled ops, with the AP at every IoU threshold."""
from __future__ import annotations

import logging

import numpy as np
from detectron2.evaluation import COCOEvaluator as _D2COCOEvaluator
from detectron2.utils.events import _CURRENT_STORAGE_STACK as _STORAGES
from detectron2.utils.events import EventStorage

from ..errors import DataError

logger = logging.getLogger("dicod_d2")

#: a training loss this many times its first logged value counts as diverged
DIVERGED_LOSS_GROWTH = 1e3

#: the ten IoU thresholds of COCO's AP (0.50, 0.55, ..., 0.95)
IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


class COCOEvaluator(_D2COCOEvaluator):
    """detectron2's ``COCOEvaluator`` with pycocotools' reference ``COCOeval`` by default.

    detectron2's fast path needs the compiled ``detectron2._C``; this evaluator runs pycocotools'
    ``COCOeval`` (``use_fast_impl=False``) and gives the same numbers. Besides AP, AP50, AP75,
    APs/m/l and the per-category AP it reports ``AP@0.55`` … ``AP@0.95`` (AP in %, per IoU
    threshold, averaged over categories, all areas, 100 detections), as in the paper's table 5.
    Give ``output_dir`` to get ``coco_instances_results.json`` for error analysis.

    Ground truth without any annotation makes every AP undefined: that is an error
    (:class:`~dicod_d2.errors.DataError`), not a table of nan. A model without any prediction
    scores AP 0 (detectron2 reports nan), with a warning that says so and, when the training loss
    grew by orders of magnitude, that the training probably diverged.
    """

    def __init__(self, dataset_name, tasks=("bbox",), distributed=True, output_dir=None, *,
                 use_fast_impl=False, **kwargs):
        super().__init__(dataset_name, tasks, distributed, output_dir,
                         use_fast_impl=use_fast_impl, **kwargs)
        if not self._coco_api.dataset.get("annotations"):
            raise DataError(
                f"the ground truth of dataset '{dataset_name}' ({self._metadata.json_file}) has no "
                "annotations: AP is undefined. Evaluate on a split with annotated objects."
            )

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names)
        if coco_eval is None:  # no prediction at all: nothing found, AP 0 (detectron2 says nan)
            results = {metric: 0.0 for metric in results}
            results.update({f"AP@{thr:.2f}": 0.0 for thr in IOU_THRESHOLDS})
            results.update({f"AP-{name}": 0.0 for name in class_names or []})
            logger.warning("%s", no_predictions_message(self._metadata.name, _current_storage()))
            return results
        precision = coco_eval.eval["precision"]  # [T, R, K, A, M]: iou, recall, class, area, maxdets
        for t, thr in enumerate(coco_eval.params.iouThrs):
            p = precision[t, :, :, 0, -1]
            p = p[p > -1]
            results[f"AP@{thr:.2f}"] = float(np.mean(p) * 100) if p.size else float("nan")
        return results


def _current_storage() -> EventStorage | None:
    """The training's event storage when evaluating inside a training, else None."""
    return _STORAGES[-1] if _STORAGES else None


def no_predictions_message(dataset_name: str, storage: EventStorage | None) -> str:
    """The warning for a model that predicted no box on ``dataset_name``; with the training's
    ``storage``, it says when ``total_loss`` grew by :data:`DIVERGED_LOSS_GROWTH` or more."""
    message = (f"the model detected nothing on '{dataset_name}' (no box above its score threshold): "
               "every AP is 0")
    history = storage.history("total_loss").values() if storage and "total_loss" in storage.histories() else []
    if len(history) >= 2:
        first, last = float(history[0][0]), float(history[-1][0])
        if first > 0 and last / first >= DIVERGED_LOSS_GROWTH:
            message += (f". The training probably diverged: total_loss grew from {first:.3g} to {last:.3g} "
                        f"(iteration {history[-1][1]}); lower optimizer.lr or raise the warm-up")
    return message

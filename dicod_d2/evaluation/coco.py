"""detectron2's COCO evaluation without compiled ops, with the AP at every IoU threshold."""
from __future__ import annotations

import numpy as np
from detectron2.evaluation import COCOEvaluator as _D2COCOEvaluator

from ..errors import DataError

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
    (:class:`~dicod_d2.errors.DataError`), not a table of nan.
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
        if coco_eval is None:  # no prediction at all: every AP is undefined, as detectron2 reports
            results.update({f"AP@{thr:.2f}": float("nan") for thr in IOU_THRESHOLDS})
            return results
        precision = coco_eval.eval["precision"]  # [T, R, K, A, M]: iou, recall, class, area, maxdets
        for t, thr in enumerate(coco_eval.params.iouThrs):
            p = precision[t, :, :, 0, -1]
            p = p[p > -1]
            results[f"AP@{thr:.2f}"] = float(np.mean(p) * 100) if p.size else float("nan")
        return results

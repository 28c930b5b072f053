"""The project's COCOEvaluator (no compiled ops) gives pycocotools' and faster-coco-eval's numbers."""
import json

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dicod_d2.evaluation import IOU_THRESHOLDS, COCOEvaluator


def _noisy_predictions(gt_json, seed=0):
    """Detections near the ground truth: jittered boxes, some wrong classes, some misses."""
    rng = np.random.default_rng(seed)
    data = json.loads(gt_json.read_text())
    dets = []
    for a in data["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = a["bbox"]
        jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
        cat = a["category_id"] if rng.random() > 0.2 else int(rng.integers(1, 11))
        dets.append({"image_id": a["image_id"], "category_id": cat,
                     "bbox": [float(v) for v in np.array([x, y, w, h]) + jitter],
                     "score": float(rng.random())})
    return data, dets


def test_matches_pycocotools_and_faster_coco_eval(tiny_fashiondet, tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import dicod_d2.data  # noqa: F401

    gt_json = tiny_fashiondet / "annotations" / "instances_val.json"
    data, dets = _noisy_predictions(gt_json)
    DatasetCatalog.get("fashiondet_tiny_val")  # loading sets the category-id map in the metadata
    meta = MetadataCatalog.get("fashiondet_tiny_val")
    to_contiguous = meta.thing_dataset_id_to_contiguous_id

    evaluator = COCOEvaluator("fashiondet_tiny_val", output_dir=str(tmp_path), distributed=False)
    evaluator.reset()
    for img in data["images"]:
        mine = [d for d in dets if d["image_id"] == img["id"]]
        inst = Instances((img["height"], img["width"]))
        xywh = torch.tensor([d["bbox"] for d in mine], dtype=torch.float32).reshape(-1, 4)
        inst.pred_boxes = Boxes(torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1))
        inst.scores = torch.tensor([d["score"] for d in mine], dtype=torch.float32)
        inst.pred_classes = torch.tensor([to_contiguous[d["category_id"]] for d in mine])
        evaluator.process([{"image_id": img["id"]}], [{"instances": inst}])
    ours = evaluator.evaluate()["bbox"]
    assert (tmp_path / "coco_instances_results.json").is_file()

    gt = COCO(str(gt_json))
    ref = COCOeval(gt, gt.loadRes(dets), "bbox")
    ref.evaluate()
    ref.accumulate()
    ref.summarize()
    for i, key in enumerate(["AP", "AP50", "AP75", "APs", "APm", "APl"]):
        assert ours[key] == pytest.approx(ref.stats[i] * 100, abs=1e-6), key
    assert 5 < ours["AP"] < 95  # a meaningful, non-degenerate case
    assert ours["AP@0.50"] == pytest.approx(ours["AP50"], abs=1e-6)
    assert ours["AP@0.75"] == pytest.approx(ours["AP75"], abs=1e-6)
    assert np.mean([ours[f"AP@{t:.2f}"] for t in IOU_THRESHOLDS]) == pytest.approx(ours["AP"], abs=1e-6)

    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster

    fgt = FCOCO(str(gt_json))
    fast = COCOeval_faster(fgt, fgt.loadRes(dets), "bbox", print_function=lambda *a: None)
    fast.evaluate()
    fast.accumulate()
    fast.summarize()
    for i, key in enumerate(["AP", "AP50", "AP75"]):
        assert ours[key] == pytest.approx(fast.stats[i] * 100, abs=1e-6), key


def test_ground_truth_without_annotations_is_an_error(tiny_fashiondet, tmp_path):
    from detectron2.data.datasets import register_coco_instances

    from dicod_d2.errors import DataError

    data = json.loads((tiny_fashiondet / "annotations" / "instances_val.json").read_text())
    data["annotations"] = []
    gt_json = tmp_path / "no_annotations.json"
    gt_json.write_text(json.dumps(data))
    register_coco_instances("no_annotations_val", {}, str(gt_json), str(tiny_fashiondet / "val"))
    with pytest.raises(DataError, match="no_annotations.json.*has no annotations: AP is undefined"):
        COCOEvaluator("no_annotations_val", distributed=False)


def _evaluate_without_predictions(tmp_path):
    from detectron2.data import DatasetCatalog

    import dicod_d2.data  # noqa: F401

    DatasetCatalog.get("fashiondet_tiny_val")
    evaluator = COCOEvaluator("fashiondet_tiny_val", output_dir=str(tmp_path), distributed=False)
    evaluator.reset()
    for image_id in range(3):
        inst = Instances((64, 64))
        inst.pred_boxes = Boxes(torch.zeros(0, 4))
        inst.scores = torch.zeros(0)
        inst.pred_classes = torch.zeros(0, dtype=torch.int64)
        evaluator.process([{"image_id": image_id}], [{"instances": inst}])
    return evaluator.evaluate()["bbox"]


def test_no_predictions_score_zero_with_a_warning(tiny_fashiondet, tmp_path, caplog):
    results = _evaluate_without_predictions(tmp_path)
    assert results["AP"] == 0.0 and results["AP50"] == 0.0 and results["AP@0.95"] == 0.0
    assert results["AP-T-shirt/top"] == 0.0
    assert not any(np.isnan(v) for v in results.values())
    assert "the model detected nothing on 'fashiondet_tiny_val'" in caplog.text
    assert "diverged" not in caplog.text


def test_no_predictions_after_a_growing_loss_says_the_training_diverged(tiny_fashiondet, tmp_path, caplog):
    from detectron2.utils.events import EventStorage

    with EventStorage(0) as storage:
        for it, loss in enumerate([2.5, 40.0, 3e5, 2e22]):
            storage.iter = it
            storage.put_scalar("total_loss", loss)
        _evaluate_without_predictions(tmp_path)
    assert "probably diverged: total_loss grew from 2.5 to 2e+22 (iteration 3)" in caplog.text

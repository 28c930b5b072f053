"""Top-1 / top-5 / per-class accuracy and the confusion matrix of ClassificationEvaluator."""

from __future__ import annotations

import math
import uuid

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from PIL import Image

from dicod_d2.evaluation.classification import ClassificationEvaluator

CLASSES = [f"c{i}" for i in range(7)]


def _dataset() -> str:
    name = f"cls_eval_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(thing_classes=CLASSES)
    return name


def _logits(ranking: list[int]) -> torch.Tensor:
    """One logit row whose classes, by decreasing score, start with ``ranking``."""
    row = torch.zeros(len(CLASSES))
    for rank, c in enumerate(ranking):
        row[c] = 10.0 - rank
    return row


def test_accuracies_per_class_and_confusion_matrix(tmp_path):
    ev = ClassificationEvaluator(_dataset(), output_dir=str(tmp_path))
    # (label, ranking): top-1 right, top-1 wrong but in the top 5, wrong even in the top 5
    items = [
        (0, [0]), (0, [1, 0]), (1, [1]), (1, [1]),
        (2, [3, 4, 5, 6, 0]), (3, [2, 3]), (3, [3]), (3, [4, 5, 6, 0, 1]),
    ]
    inputs = [{"labels": torch.tensor([lab for lab, _ in items[:5]])},
              {"labels": torch.tensor([lab for lab, _ in items[5:]])},
              {"labels": torch.zeros(0, dtype=torch.long), "unreadable": True}]
    rows = torch.stack([_logits(r) for _, r in items])
    outputs = [{"logits": rows[:5]}, {"logits": rows[5:]}, {"logits": torch.zeros((0, 7))}]
    ev.reset()
    ev.process(inputs, outputs)
    res = ev.evaluate()["classification"]
    assert math.isclose(res["top1"], 100 * 4 / 8)
    assert math.isclose(res["top5"], 100 * 6 / 8)
    assert math.isclose(res["top1-c0"], 50.0) and math.isclose(res["top1-c1"], 100.0)
    assert res["top1-c2"] == 0.0 and math.isclose(res["top1-c3"], 100 / 3)
    assert math.isnan(res["top1-c4"]), "a class without crops has an undefined accuracy"
    png = tmp_path / "confusion_matrix.png"
    assert png.is_file() and Image.open(png).size[0] > 100
    csv = (tmp_path / "per_class_accuracy.csv").read_text().splitlines()
    assert csv[1].startswith('"c0",2,50.0') and len(csv) == 1 + len(CLASSES)


def test_confusion_counts():
    ev = ClassificationEvaluator([_dataset()], topk=(1,))
    labels = torch.tensor([0, 0, 2, 2, 2])
    preds = torch.tensor([0, 2, 2, 2, 1])
    ev.process([{"labels": labels}], [{"logits": torch.nn.functional.one_hot(preds, 7).float()}])
    assert list(ev.evaluate()["classification"])[:1] == ["top1"]
    expected = np.zeros((7, 7), dtype=np.int64)
    expected[0, 0], expected[0, 2], expected[2, 2], expected[2, 1] = 1, 1, 2, 1
    np.testing.assert_array_equal(ev.confusion_matrix, expected)


def test_wrong_number_of_logits_is_a_clear_error():
    ev = ClassificationEvaluator(_dataset())
    try:
        ev.process([{"labels": torch.tensor([0])}], [{"logits": torch.zeros((1, 3))}])
    except ValueError as e:
        assert "3 logits" in str(e) and "7 classes" in str(e)
    else:
        raise AssertionError("no error for a 3-way model on a 7-class dataset")


def test_nothing_to_evaluate_gives_no_result():
    ev = ClassificationEvaluator(_dataset())
    assert ev.evaluate() == {}


def test_top1_by_object_size():
    """COCO's size ranges on the crops' box areas: small < 32², medium < 96², large above; a size
    with no crop (or items without areas) is nan."""
    ev = ClassificationEvaluator(_dataset(), topk=(1,))
    labels = torch.tensor([0, 1, 2, 3, 0])
    preds = torch.tensor([0, 0, 2, 3, 1])  # right: items 0, 2, 3
    areas = torch.tensor([10.0**2, 31.0**2, 50.0**2, 95.0**2, 200.0**2])
    ev.process([{"labels": labels, "areas": areas}], [{"logits": torch.nn.functional.one_hot(preds, 7).float()}])
    res = ev.evaluate()["classification"]
    assert math.isclose(res["top1-small"], 50.0) and math.isclose(res["top1-medium"], 100.0)
    assert res["top1-large"] == 0.0
    ev.reset()
    ev.process([{"labels": labels}], [{"logits": torch.nn.functional.one_hot(preds, 7).float()}])
    res = ev.evaluate()["classification"]
    assert math.isclose(res["top1"], 60.0) and all(math.isnan(res[f"top1-{s}"]) for s in ("small", "medium", "large"))

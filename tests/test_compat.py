"""detectron2 0.6 imports and runs on this stack: placeholder ops, Pillow/numpy compat, MapDataset."""
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")


@pytest.mark.parametrize("first", ["", "import dicod_d2; "])
def test_detectron2_imports_with_and_without_dicod_first(first):
    res = _run(
        first + "import sys, detectron2.modeling, detectron2.evaluation, detectron2.data; "
        "import detectron2.data.transforms as T; from PIL import Image; "
        "print(Image.LINEAR == Image.BILINEAR, 'dicod_d2.compat' in sys.modules)"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["True", "True"]


def test_placeholder_answers_default_setup_queries():
    from detectron2 import _C
    from detectron2.utils.collect_env import collect_env_info

    assert _C.has_cuda() is False
    assert "without compiled ops" in _C.get_compiler_version()
    assert "without compiled ops" in _C.get_cuda_version()
    assert "detectron2" in collect_env_info()


@pytest.mark.parametrize("op", ["rotated_nms", "box_iou_rotated", "fast_coco_eval"])
def test_compiled_ops_raise_an_error_naming_the_op(op):
    from detectron2 import _C

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [11.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(_C.CompiledOpUnavailable) as info:
        if op == "rotated_nms":
            from detectron2.layers import nms_rotated

            nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)
            name = "nms_rotated"
        elif op == "box_iou_rotated":
            from detectron2.layers.rotated_boxes import pairwise_iou_rotated

            name = "box_iou_rotated"
            pairwise_iou_rotated(boxes, boxes)
        else:
            from detectron2.evaluation.fast_eval_api import COCOeval_opt
            from pycocotools.coco import COCO

            name = "InstanceAnnotation"
            gt = COCO()
            gt.dataset = {
                "images": [{"id": 1, "width": 20, "height": 20}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5],
                                 "area": 25, "iscrowd": 0}],
            }
            gt.createIndex()
            dt = gt.loadRes([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1.0}])
            COCOeval_opt(gt, dt, "bbox").evaluate()
    msg = str(info.value)
    assert (name if op != "rotated_nms" else "nms_rotated") in msg
    assert "installed without compiled ops" in msg


def test_numpy_and_pillow_aliases_restored():
    from PIL import Image

    import dicod_d2  # noqa: F401

    assert np.int is int and np.float is float and np.object is object and np.str is str
    assert Image.LINEAR == Image.BILINEAR


def test_class_histogram_is_logged_again(caplog):
    from detectron2.data.build import print_instances_class_histogram

    dicts = [{"annotations": [{"category_id": 0}, {"category_id": 1}, {"category_id": 1}]}]
    logger = logging.getLogger("detectron2.data.build")
    logger.propagate = True
    with caplog.at_level(logging.INFO, logger="detectron2.data.build"):
        print_instances_class_histogram(dicts, ["shirt", "coat"])
    text = caplog.text
    assert "Distribution of instances among all 2 categories" in text
    assert "shirt" in text and "coat" in text and "total" in text


def test_map_dataset_retries_when_the_mapper_returns_none():
    from detectron2.data.common import MapDataset

    import dicod_d2.data  # noqa: F401  (applies the MapDataset fix)

    data = MapDataset(list(range(5)), lambda x: None if x == 0 else x * 10)
    assert data[0] in {10, 20, 30, 40}

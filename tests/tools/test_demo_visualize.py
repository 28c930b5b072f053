"""The demo's side-by-side pictures: every student family, seen as at test time (its resize and
channel order), boxes in the original image's pixels."""
import numpy as np
import pytest
import torch
from demo_pipeline.visualize import detections, side_by_side, top_detections
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from PIL import Image

from dicod_d2.config.lazy import load_config
from dicod_d2.inference.student import load_student

DATASET = "fashiondet_tiny_test"


def _student(tmp_path, family, variant):
    cfg = load_config(f"configs/fashiondet/{family}/baseline.py")
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp_path / f"{variant}.pth")
    return load_student(f"configs/fashiondet/{family}/{variant}.py", tmp_path / f"{variant}.pth",
                        overrides=[f"dataloader.test.dataset.names={DATASET}"], score_thresh=0.0)


@pytest.mark.parametrize(("family", "input_format"), [("ssd", "RGB"), ("faster_rcnn", "BGR")])
def test_pictures_of_each_family(tiny_fashiondet, tmp_path, family, input_format):
    students = {"baseline": _student(tmp_path, family, "baseline"),
                "full DICOD": _student(tmp_path, family, "dicod")}
    assert students["baseline"].input_format == input_format
    record = DatasetCatalog.get(DATASET)[0]
    rgb, inst = detections(students["baseline"], record["file_name"])
    with Image.open(record["file_name"]) as image:
        np.testing.assert_array_equal(rgb, np.asarray(image.convert("RGB")))
    assert inst.image_size == (record["height"], record["width"]) == (256, 256)
    assert len(inst) > 0  # score threshold 0: an untrained model still detects
    boxes = inst.pred_boxes.tensor
    assert boxes.min() >= 0 and boxes[:, 2].max() <= 256 and boxes[:, 3].max() <= 256

    top = top_detections(inst, 3, score_thresh=float(inst.scores.min()))
    assert len(top) == 3 and (top.scores == inst.scores.sort(descending=True).values[:3]).all()
    assert len(top_detections(inst, 3, score_thresh=1.01)) == 0

    written = side_by_side(students, DATASET, tmp_path / "examples", num_images=2)
    assert [p.name for p in written] == [f"{DATASET}_{r['image_id']:06d}.png"
                                         for r in DatasetCatalog.get(DATASET)[:2]]
    with Image.open(written[0]) as picture:  # two panels at scale 2 with an 8 px separator, 28 px title
        assert picture.size == (2 * 512 + 8, 512 + 28)
    assert not list((tmp_path / "examples").glob("*.tmp*"))

"""Images whose pixels cannot be read (a file cut after a valid header, not an image, missing): the
detection loaders skip them with a warning naming the file, other mapper failures keep their error."""
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, DatasetMapper, build_detection_train_loader
from PIL import Image

from dicod_d2.data.coco_json import image_problem
from dicod_d2.data.dataset_mapper import (
    UNREADABLE,
    SkipUnreadableImages,
    drop_unreadable,
    pixels_problem,
)


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def records(tiny_fashiondet, tmp_path):
    """Four training records of the tiny FashionDet whose images are copies in ``tmp_path``; the
    first one's file is cut in half."""
    records = [dict(r) for r in DatasetCatalog.get("fashiondet_tiny_train")[:4]]
    for r in records:
        r["file_name"] = str(shutil.copy(r["file_name"], tmp_path))
    _cut_in_half(Path(records[0]["file_name"]))
    return records


def test_pixels_problem_decodes_the_whole_image(tmp_path, records):
    truncated = records[0]["file_name"]
    assert image_problem(truncated, None, None) is None  # its header is valid
    assert pixels_problem(truncated).startswith("OSError: image file is truncated")
    png = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png)
    _cut_in_half(png)
    assert pixels_problem(str(png)).startswith("OSError: image file is truncated")
    (tmp_path / "text.jpg").write_text("not an image")
    assert pixels_problem(str(tmp_path / "text.jpg")).startswith("UnidentifiedImageError")
    assert pixels_problem(str(tmp_path / "none.jpg")) == "missing"
    assert pixels_problem(records[1]["file_name"]) is None


def test_the_train_loader_skips_a_truncated_image_with_a_warning(records, caplog):
    mapper = DatasetMapper(is_train=True, augmentations=[], image_format="BGR")
    with pytest.raises(OSError, match="truncated"):  # what a DataLoader worker died of
        mapper(records[0])
    loader = build_detection_train_loader(dataset=records, mapper=SkipUnreadableImages(mapper),
                                          total_batch_size=2, num_workers=0)
    seen, skipped = set(), 0
    for batch in itertools.islice(loader, 6):  # 12 images: every record three times
        batch, n = drop_unreadable(batch)
        skipped += n
        seen |= {d["file_name"] for d in batch}
        assert all(d["image"].shape[0] == 3 and "instances" in d for d in batch)
    assert skipped >= 2 and seen == {r["file_name"] for r in records[1:]}
    assert f"Skipping unreadable image '{records[0]['file_name']}' (OSError: image file is truncated" \
        in caplog.text


def test_the_skipped_record_keeps_what_aspect_grouping_reads(records):
    out = SkipUnreadableImages(DatasetMapper(is_train=False, augmentations=[], image_format="BGR"))(records[0])
    assert out[UNREADABLE].startswith("OSError") and "image" not in out
    assert (out["file_name"], out["image_id"], out["width"], out["height"]) == tuple(
        records[0][k] for k in ("file_name", "image_id", "width", "height"))


def test_other_mapper_failures_keep_their_error(records):
    def buggy(dataset_dict):
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug"):
        SkipUnreadableImages(buggy)(records[1])
    resized = dict(records[1], width=records[1]["width"] + 1)  # the annotations' size disagrees
    with pytest.raises(ValueError, match="Mismatched image shape"):
        SkipUnreadableImages(DatasetMapper(is_train=True, augmentations=[], image_format="BGR"))(resized)

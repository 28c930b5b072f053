"""SSD's detection data pipeline: BoxAugDatasetMapper gives the boxes to the min-IoU crop, and the
SSD configs' loaders yield size² images in the model's channel order with boxes on their objects."""
import numpy as np
import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES
from detectron2.config import instantiate
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image

from dicod_d2.config.lazy import apply_overrides, load_config
from dicod_d2.data.dataset_mapper import BoxAugDatasetMapper, annotation_boxes
from dicod_d2.data.transforms import (
    Expand,
    MinIoURandomCrop,
    PhotometricDistortion,
    ssd_test_augmentations,
    ssd_train_augmentations,
)
from dicod_d2.errors import ConfigError, DataError

H, W = 120, 160
OBJECT = [30.0, 20.0, 90.0, 80.0]  # XYXY, a white square on black


@pytest.fixture()
def record(tmp_path):
    """A dataset dict: the white object (XYWH annotation), a crowd box elsewhere, in a PNG file."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = map(int, OBJECT)
    img[y0:y1, x0:x1] = 255
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    return {
        "file_name": str(path), "height": H, "width": W, "image_id": 1,
        "annotations": [
            {"bbox": [x0, y0, x1 - x0, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 3},
            {"bbox": [120, 90, 150, 110], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1, "iscrowd": 1},
        ],
    }


def _white_extent(image: np.ndarray) -> np.ndarray:
    gray = image.astype(np.float32).mean(axis=2)
    ys, xs = np.nonzero(gray > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def test_annotation_boxes_converts_modes_and_skips_crowd(record):
    np.testing.assert_array_equal(annotation_boxes(record["annotations"]), [OBJECT])
    assert annotation_boxes([]).shape == (0, 4)


def test_plain_dataset_mapper_cannot_run_the_min_iou_crop(record):
    mapper = DatasetMapper(True, augmentations=[MinIoURandomCrop()], image_format="RGB")
    with pytest.raises(ConfigError, match="needs the boxes"):
        for _ in range(20):  # the crop may draw "no crop" first; it asks for the boxes every time
            mapper(record)


def test_box_aug_mapper_keeps_boxes_on_the_object(record):
    mapper = BoxAugDatasetMapper(
        True, augmentations=ssd_train_augmentations(300, mean=(0, 0, 0), image_format="RGB"),
        image_format="RGB",
    )
    np.random.seed(0)
    for _ in range(12):
        out = mapper(record)
        image = out["image"].permute(1, 2, 0).numpy()
        assert out["image"].shape == (3, 300, 300) and out["image"].dtype == torch.uint8
        inst = out["instances"]
        assert inst.gt_classes.tolist() == [3]  # the crowd box is never an instance
        # brightness / contrast jitter keep a white-on-black object the bright region
        np.testing.assert_allclose(inst.gt_boxes.tensor[0].numpy(), _white_extent(image), atol=4)
    assert record["annotations"][0]["bbox_mode"] == BoxMode.XYWH_ABS  # the input is not modified


def test_box_aug_mapper_drops_an_object_whose_centre_left_the_crop(record):
    from dicod_d2.data.transforms import CenterCropTransform

    crop = CenterCropTransform(100, 0, 60, 120, orig_w=W, orig_h=H)  # right part: centre (60, 50) out
    out = BoxAugDatasetMapper(True, augmentations=[crop], image_format="RGB")(record)
    assert len(out["instances"]) == 0 and out["image"].shape == (3, 120, 60)


def test_box_aug_mapper_at_test_time_drops_annotations(record):
    out = BoxAugDatasetMapper(False, augmentations=ssd_test_augmentations(512), image_format="BGR")(record)
    assert "annotations" not in out and "instances" not in out
    assert out["image"].shape == (3, 512, 512)


def test_box_aug_mapper_rejects_proposals():
    with pytest.raises(ConfigError, match="proposals: remove the mapper's precomputed_proposal_topk"):
        BoxAugDatasetMapper(True, augmentations=[], image_format="RGB", precomputed_proposal_topk=10)


def test_box_aug_mapper_rejects_a_semantic_segmentation_record(record):
    mapper = BoxAugDatasetMapper(True, augmentations=[], image_format="RGB")
    with pytest.raises(DataError, match="does not support semantic segmentation.*sem_seg_file_name"):
        mapper({**record, "sem_seg_file_name": "seg.png"})


@pytest.mark.parametrize("rel, size, expand", [("coco/ssd300/baseline.py", 300, True),
                                               ("coco/ssd512/dicod.py", 512, True),
                                               ("fashiondet/ssd/baseline.py", 300, False)])
def test_ssd_configs_use_the_ssd_pipeline_of_their_model(rel, size, expand):
    cfg = load_config(REPO / "configs" / rel)
    train_augs = instantiate(cfg.dataloader.train.mapper.augmentations)
    assert [type(a) for a in train_augs] == [PhotometricDistortion, *([Expand] if expand else []),
                                             MinIoURandomCrop, T.Resize, T.RandomFlip]
    assert (train_augs[-2].shape, train_augs[-1].prob) == ((size, size), 0.5)
    if expand:  # the canvas is the model's mean colour
        assert train_augs[1].fill == tuple(cfg.model.pixel_mean)
    assert train_augs[0].image_format == cfg.model.input_format == "RGB"
    assert cfg.dataloader.train.mapper._target_ is BoxAugDatasetMapper
    (test_resize,) = instantiate(cfg.dataloader.test.mapper.augmentations)
    assert test_resize.shape == (size, size)
    assert cfg.dataloader.test.mapper.image_format == "RGB"
    assert cfg.optimizer.weight_decay == pytest.approx(5e-4) and cfg.optimizer.momentum == 0.9


def test_fashiondet_ssd_loaders_yield_rgb_images_of_the_network_size(tiny_fashiondet):
    cfg = load_config(REPO / "configs/fashiondet/ssd/baseline.py")
    cfg = apply_overrides(cfg, TINY_OVERRIDES)
    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 2
    for x in batch:
        assert x["image"].shape == (3, 300, 300)
        boxes = x["instances"].gt_boxes.tensor
        assert len(boxes) and (boxes >= 0).all() and (boxes <= 300).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
    test = next(iter(instantiate(cfg.dataloader.test)))[0]
    rgb = utils.read_image(test["file_name"], format="RGB")
    want = T.Resize((300, 300)).get_transform(rgb).apply_image(rgb)
    np.testing.assert_array_equal(test["image"].permute(1, 2, 0).numpy(), want)

"""SSD augmentations keep boxes on their objects: a white box on black, transformed with its box."""
import numpy as np
import pytest
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from fvcore.transforms.transform import NoOpTransform

from dicod_d2.data.transforms import (
    CenterCropTransform,
    Expand,
    ExpandTransform,
    MinIoURandomCrop,
    PhotometricDistortion,
    PhotometricTransform,
    ssd_test_augmentations,
    ssd_train_augmentations,
)
from dicod_d2.errors import ConfigError, UserError

H, W = 160, 200
BOX = np.array([[40.0, 30.0, 100.0, 90.0]])


def _white_box_image(boxes=BOX):
    img = np.zeros((H, W, 3), dtype=np.uint8)
    for x0, y0, x1, y1 in boxes.astype(int):
        img[y0:y1, x0:x1] = 255
    return img


def _white_extent(img):
    """XYXY extent of the bright pixels (pixel-edge coordinates)."""
    gray = img.astype(np.float32).mean(axis=2)
    ys, xs = np.nonzero(gray > (gray.max() + gray.min()) / 2)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def _clip(box, img):
    h, w = img.shape[:2]
    return np.clip(box, 0, [w, h, w, h])


def _assert_box_on_white(tfm, tol):
    img = tfm.apply_image(_white_box_image())
    box = tfm.apply_box(BOX)[0]
    np.testing.assert_allclose(_clip(box, img), _white_extent(img), atol=tol)
    return img, box


def test_expand_pastes_image_and_shifts_boxes():
    img, box = _assert_box_on_white(ExpandTransform(left=37, top=11, canvas_w=400, canvas_h=300, fill=(10, 20, 30)), 0)
    assert img.shape == (300, 400, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(box, [77, 41, 137, 101])
    assert tuple(img[0, 0]) == (10, 20, 30) and tuple(img[11, 37]) == (0, 0, 0)


def test_expand_augmentation_ratio_and_probability():
    np.random.seed(0)
    aug = Expand(ratio_range=(2.0, 3.0), fill=(1, 2, 3), prob=1.0)
    for _ in range(5):
        tfm = aug.get_transform(_white_box_image())
        assert 2 * W <= tfm.canvas_w <= 3 * W and 2 * H <= tfm.canvas_h <= 3 * H
        assert 0 <= tfm.left <= tfm.canvas_w - W and 0 <= tfm.top <= tfm.canvas_h - H
        _assert_box_on_white(tfm, 0)
    assert isinstance(Expand(prob=0.0).get_transform(_white_box_image()), NoOpTransform)


def test_center_crop_moves_and_drops_boxes():
    crop = CenterCropTransform(60, 50, 100, 80, orig_w=W, orig_h=H)  # contains BOX's centre (70, 60)
    img, box = _assert_box_on_white(crop, 0)
    np.testing.assert_array_equal(box, [-20, -20, 40, 40])  # clipped later by the mapper
    outside = np.array([[150.0, 100.0, 190.0, 150.0], [0.0, 0.0, 50.0, 40.0]])  # centres (170,125), (25,20)
    np.testing.assert_array_equal(crop.apply_box(outside), np.zeros((2, 4)))


def test_mapper_drops_boxes_whose_centre_left_the_crop():
    """detectron2's own annotation path: clip, then filter_empty_instances removes the emptied box."""
    crop = CenterCropTransform(60, 50, 100, 80, orig_w=W, orig_h=H)
    tfms = T.TransformList([crop, T.ResizeTransform(80, 100, 300, 300)])
    annos = [
        {"bbox": [40, 30, 100, 90], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0},
        {"bbox": [0, 0, 50, 40], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1},  # centre outside
    ]
    annos = [utils.transform_instance_annotations(a, tfms, (300, 300)) for a in annos]
    inst = utils.filter_empty_instances(utils.annotations_to_instances(annos, (300, 300)))
    assert inst.gt_classes.tolist() == [0]
    np.testing.assert_allclose(inst.gt_boxes.tensor.numpy()[0], [0, 0, 120, 150], atol=1e-4)


def test_min_iou_crop_constraints():
    np.random.seed(0)
    boxes = np.array([[40.0, 30.0, 100.0, 90.0], [120.0, 80.0, 180.0, 150.0]])
    aug = MinIoURandomCrop()
    kinds = set()
    for _ in range(60):
        tfm = aug.get_transform(_white_box_image(boxes), boxes)
        kinds.add(type(tfm))
        if isinstance(tfm, CenterCropTransform):
            assert 0.3 * W - 1 <= tfm.w <= W and 0.3 * H - 1 <= tfm.h <= H
            assert 0.5 <= tfm.h / tfm.w <= 2.0 + 0.05
            assert tfm.x0 + tfm.w <= W and tfm.y0 + tfm.h <= H
            assert (tfm.apply_box(boxes).sum(axis=1) != 0).any()  # at least one centre kept
    assert kinds == {NoOpTransform, CenterCropTransform}
    # a min-IoU mode: every accepted crop overlaps every box by at least that IoU
    for _ in range(200):
        crop = aug._try_crop(H, W, boxes[:1], 0.5)
        if crop is not None:
            x0, y0, w, h = crop
            ix = max(0, min(100, x0 + w) - max(40, x0))
            iy = max(0, min(90, y0 + h) - max(30, y0))
            assert ix * iy / (60 * 60 + w * h - ix * iy) >= 0.5


def test_min_iou_crop_needs_boxes():
    with pytest.raises(ConfigError, match="AugInput.*BoxAugDatasetMapper"):
        MinIoURandomCrop().get_transform(_white_box_image(), None)


@pytest.mark.parametrize("build, message", [
    (lambda: PhotometricDistortion(image_format="RGBA"),
     r"image_format must be 'BGR' or 'RGB', got 'RGBA'.*dataloader\.train\.mapper\.image_format"),
    (lambda: ssd_train_augmentations(300, (1, 2, 3), image_format="YUV"), "got 'YUV'"),
    (lambda: Expand(ratio_range=(0.5, 2.0)), r"Expand ratio_range must satisfy 1 <= low <= high, got \(0\.5, 2\.0\)"),
    (lambda: MinIoURandomCrop(min_crop_size=0.0), r"min_crop_size must be in \(0, 1\], got 0\.0"),
    (lambda: ExpandTransform(0, 0, W, H, fill=(1, 2)).apply_image(_white_box_image()),
     r"Expand fill \(1, 2\) needs one value per image channel \(3\)"),
])
def test_bad_augmentation_values_are_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_an_image_that_is_not_hxwxc_is_a_bug():
    with pytest.raises(ValueError, match="HxWxC") as info:
        ExpandTransform(0, 0, W, H, fill=(1, 2, 3)).apply_image(np.zeros((H, W)))
    assert not isinstance(info.value, UserError)


def test_min_iou_crop_without_boxes_accepts_any_crop():
    np.random.seed(1)
    for _ in range(10):
        tfm = MinIoURandomCrop().get_transform(_white_box_image(), np.zeros((0, 4)))
        assert isinstance(tfm, (NoOpTransform, CenterCropTransform))


def test_photometric_is_image_only_and_neutral_is_identity():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    neutral = PhotometricTransform(0.0, 1.0, True, 1.0, 0.0)
    np.testing.assert_allclose(neutral.apply_image(img).astype(int), img.astype(int), atol=1)
    tfm = PhotometricTransform(brightness=20.0, contrast=1.2, contrast_first=False, saturation=0.5, hue=10.0)
    out = tfm.apply_image(img)
    assert out.dtype == np.uint8 and out.shape == img.shape and not np.array_equal(out, img)
    np.testing.assert_array_equal(tfm.apply_box(BOX), BOX)
    gray = np.full((4, 4, 3), 100, dtype=np.uint8)  # saturation and hue leave gray alone
    np.testing.assert_allclose(tfm.apply_image(gray).astype(int), int(round(120 * 1.2)), atol=1)
    np.random.seed(0)
    t = PhotometricDistortion().get_transform(img)
    assert -32 <= t.brightness <= 32 and 0.5 <= t.contrast <= 1.5 and -18 <= t.hue <= 18


def test_expand_max_sets_or_drops_the_zoom_out():
    augs = ssd_train_augmentations(300, (0, 0, 0), expand_max=2.5)
    assert [a.ratio_range for a in augs if isinstance(a, Expand)] == [(1.0, 2.5)]
    assert not any(isinstance(a, Expand) for a in ssd_train_augmentations(300, (0, 0, 0), expand_max=1))
    with pytest.raises(ConfigError, match=r"expand_max must be >= 1 \(1: no expand step\), got 0\.5"):
        ssd_train_augmentations(300, (0, 0, 0), expand_max=0.5)


def test_full_pipelines_keep_box_on_object():
    mean = (0.0, 0.0, 0.0)  # black fill keeps the object the only bright region
    augs = ssd_train_augmentations(300, mean)
    assert [type(a) for a in augs] == [PhotometricDistortion, Expand, MinIoURandomCrop, T.Resize, T.RandomFlip]
    np.random.seed(0)
    for _ in range(15):
        aug_input = T.AugInput(_white_box_image(), boxes=BOX.copy())
        tfms = T.AugmentationList(augs)(aug_input)
        assert aug_input.image.shape == (300, 300, 3)
        box = tfms.apply_box(BOX)[0]
        np.testing.assert_allclose(aug_input.boxes[0], box)
        # resizes of up to 4x-expanded images blur edges: a few pixels of tolerance
        np.testing.assert_allclose(_clip(box, aug_input.image), _white_extent(aug_input.image), atol=4)
    test_input = T.AugInput(_white_box_image(), boxes=BOX.copy())
    tfms = T.AugmentationList(ssd_test_augmentations(512))(test_input)
    assert test_input.image.shape == (512, 512, 3)
    np.testing.assert_allclose(tfms.apply_box(BOX)[0], BOX[0] * [512 / W, 512 / H, 512 / W, 512 / H])

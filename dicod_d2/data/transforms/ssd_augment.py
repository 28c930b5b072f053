"""SSD's training augmentation as detectron2 ``Augmentation``s whose transforms move the boxes.

Pipeline (:func:`ssd_train_augmentations`): photometric distortion → expand ×[1, 4] on a canvas
filled with the mean → min-IoU random crop → resize to size² (aspect ratio ignored) → horizontal
flip with probability 0.5. Test time (:func:`ssd_test_augmentations`): the resize only.

Images are HxWx3 arrays (uint8 or float, 0..255) in the mapper's ``image_format``; boxes are
XYXY absolute pixels.

Boxes and the min-IoU crop: SSD keeps only the boxes whose centre lies inside the crop, and the crop
is only accepted when at least one centre does (or the image has no box). detectron2's
``DatasetMapper`` cannot drop boxes from a transform, so :class:`CenterCropTransform` maps every box
whose centre lies outside the crop to the empty box ``[0, 0, 0, 0]``; later transforms keep it empty
and the mapper's ``filter_empty_instances`` removes it. Boxes whose centre is inside are clipped
to the crop by the mapper (``transform_instance_annotations``). The crop needs the boxes: the mapper
must build ``T.AugInput(image, boxes=...)`` (detectron2's default ``DatasetMapper`` passes none).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import CropTransform, NoOpTransform, Transform

from ...errors import ConfigError

__all__ = [
    "CenterCropTransform",
    "Expand",
    "ExpandTransform",
    "MinIoURandomCrop",
    "PhotometricDistortion",
    "PhotometricTransform",
    "ssd_test_augmentations",
    "ssd_train_augmentations",
    "SSD_EXPAND_MAX",
]

_HSV_CODES = {"BGR": (cv2.COLOR_BGR2HSV, cv2.COLOR_HSV2BGR), "RGB": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)}


def _check_format(image_format: str) -> str:
    if image_format not in _HSV_CODES:
        raise ConfigError(
            f"image_format must be 'BGR' or 'RGB', got {image_format!r}: set the data mapper's "
            "image_format (e.g. dataloader.train.mapper.image_format) to one of them."
        )
    return image_format


class PhotometricTransform(Transform):
    """SSD colour jitter with fixed parameters; image only (boxes and masks unchanged).

    Order: brightness (add ``brightness``), contrast (multiply by ``contrast``) here if
    ``contrast_first``, saturation (multiply S by ``saturation``), hue (add ``hue`` degrees, wrapped),
    contrast here otherwise. Values are clipped to [0, 255] after every step; the output keeps the
    input's dtype. Neutral values: 0, 1, 1, 0.
    """

    def __init__(
        self,
        brightness: float,
        contrast: float,
        contrast_first: bool,
        saturation: float,
        hue: float,
        image_format: str = "BGR",
    ):
        super().__init__()
        _check_format(image_format)
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"PhotometricTransform needs an HxWx3 image, got shape {img.shape}.")
        x = np.clip(img.astype(np.float32) + self.brightness, 0, 255)
        if self.contrast_first:
            x = np.clip(x * self.contrast, 0, 255)
        to_hsv, from_hsv = _HSV_CODES[self.image_format]
        hsv = cv2.cvtColor(x, to_hsv)  # float32: H in [0, 360), S in [0, 1], V in [0, 255]
        hsv[..., 1] = np.clip(hsv[..., 1] * self.saturation, 0, 1)
        hsv[..., 0] = np.mod(hsv[..., 0] + self.hue, 360.0)
        x = np.clip(cv2.cvtColor(hsv, from_hsv), 0, 255)
        if not self.contrast_first:
            x = np.clip(x * self.contrast, 0, 255)
        if np.issubdtype(img.dtype, np.integer):
            return np.round(x).astype(img.dtype)
        return x.astype(img.dtype)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation


class PhotometricDistortion(T.Augmentation):
    """Random SSD colour jitter: each of brightness (±``brightness_delta``), contrast, saturation
    (factors in the given ranges) and hue (±``hue_delta`` degrees) is applied with probability 0.5,
    contrast before or after the HSV steps with probability 0.5 each. Image only.
    """

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: float = 18,
        image_format: str = "BGR",
    ):
        super().__init__()
        _check_format(image_format)
        self._init(locals())

    def _maybe(self, low: float, high: float, neutral: float) -> float:
        return float(np.random.uniform(low, high)) if np.random.rand() < 0.5 else neutral

    def get_transform(self, image: np.ndarray) -> PhotometricTransform:
        return PhotometricTransform(
            brightness=self._maybe(-self.brightness_delta, self.brightness_delta, 0.0),
            contrast=self._maybe(*self.contrast_range, 1.0),
            contrast_first=bool(np.random.rand() < 0.5),
            saturation=self._maybe(*self.saturation_range, 1.0),
            hue=self._maybe(-self.hue_delta, self.hue_delta, 0.0),
            image_format=self.image_format,
        )


class ExpandTransform(Transform):
    """Paste the image at (left, top) into a canvas_h × canvas_w canvas filled with ``fill``
    (one value per channel). Coordinates shift by (left, top)."""

    def __init__(self, left: int, top: int, canvas_w: int, canvas_h: int, fill: Sequence[float]):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if self.left + w > self.canvas_w or self.top + h > self.canvas_h:
            raise ValueError(
                f"a {w}x{h} image at ({self.left}, {self.top}) does not fit the "
                f"{self.canvas_w}x{self.canvas_h} canvas."
            )
        fill = np.asarray(self.fill, dtype=np.float64)
        if img.ndim != 3:
            raise ValueError(f"ExpandTransform needs an HxWxC image, got shape {img.shape}.")
        if fill.shape != (img.shape[2],):
            raise ConfigError(
                f"Expand fill {tuple(self.fill)} needs one value per image channel ({img.shape[2]}): "
                "give the dataset mean in the image's channel order."
            )
        if np.issubdtype(img.dtype, np.integer):
            fill = np.round(fill)
        canvas = np.empty((self.canvas_h, self.canvas_w, img.shape[2]), dtype=img.dtype)
        canvas[...] = fill.astype(img.dtype)
        canvas[self.top : self.top + h, self.left : self.left + w] = img
        return canvas

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float64).copy()
        coords[:, 0] += self.left
        coords[:, 1] += self.top
        return coords


class Expand(T.Augmentation):
    """With probability ``prob``, place the image at a random position of a canvas ``r`` times
    larger (r uniform in ``ratio_range``) filled with ``fill`` (the dataset mean, image channel order)."""

    def __init__(self, ratio_range: Sequence[float] = (1.0, 4.0), fill: Sequence[float] = (0, 0, 0), prob: float = 0.5):
        super().__init__()
        if not 1.0 <= ratio_range[0] <= ratio_range[1]:
            raise ConfigError(f"Expand ratio_range must satisfy 1 <= low <= high, got {tuple(ratio_range)}.")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        if np.random.rand() >= self.prob:
            return NoOpTransform()
        h, w = image.shape[:2]
        ratio = np.random.uniform(*self.ratio_range)
        canvas_w, canvas_h = int(w * ratio), int(h * ratio)
        left = int(np.random.uniform(0, canvas_w - w))
        top = int(np.random.uniform(0, canvas_h - h))
        return ExpandTransform(left, top, canvas_w, canvas_h, tuple(float(v) for v in self.fill))


class CenterCropTransform(CropTransform):
    """``CropTransform`` whose boxes with their centre outside the crop become ``[0, 0, 0, 0]``
    (removed as empty by the mapper; see the module docstring). Other boxes move with the crop."""

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        out = super().apply_box(box)
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        inside = (cx > self.x0) & (cx < self.x0 + self.w) & (cy > self.y0) & (cy < self.y0 + self.h)
        out[~inside] = 0.0
        return out


class MinIoURandomCrop(T.Augmentation):
    """SSD's random crop. Each draw picks a mode among "no crop", each of ``min_ious`` and 0 (any
    crop); for a min-IoU mode it tries ``max_trials`` crops of side in [``min_crop_size``, 1] × the
    image side and aspect ratio h/w in [0.5, 2], and accepts the first whose IoU with every box is at
    least that minimum and which contains at least one box centre (images without boxes accept any
    crop). When no trial succeeds a new mode is drawn ("no crop" ends the loop).

    Needs ``boxes`` [N, 4] XYXY pixels in the ``AugInput``.
    """

    input_args = ("image", "boxes")

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        max_trials: int = 50,
    ):
        super().__init__()
        if not 0 < min_crop_size <= 1:
            raise ConfigError(f"MinIoURandomCrop min_crop_size must be in (0, 1], got {min_crop_size}.")
        self._init(locals())

    def get_transform(self, image: np.ndarray, boxes: np.ndarray | None) -> Transform:
        if boxes is None:
            raise ConfigError(
                "MinIoURandomCrop needs the boxes: build the AugInput with boxes "
                "(T.AugInput(image, boxes=XYXY array)); detectron2's DatasetMapper passes none, "
                "use dicod_d2.data.dataset_mapper.BoxAugDatasetMapper as the config's mapper."
            )
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        h, w = image.shape[:2]
        modes = (None, *self.min_ious, 0.0)  # None: no crop
        while True:
            min_iou = modes[np.random.randint(len(modes))]
            if min_iou is None:
                return NoOpTransform()
            for _ in range(self.max_trials):
                crop = self._try_crop(h, w, boxes, min_iou)
                if crop is not None:
                    return CenterCropTransform(*crop, orig_w=w, orig_h=h)

    def _try_crop(self, h: int, w: int, boxes: np.ndarray, min_iou: float) -> tuple[int, int, int, int] | None:
        """One random (x0, y0, crop_w, crop_h) satisfying the constraints, or None."""
        new_w = np.random.uniform(self.min_crop_size * w, w)
        new_h = np.random.uniform(self.min_crop_size * h, h)
        if not 0.5 <= new_h / new_w <= 2:
            return None
        x0, y0 = int(np.random.uniform(0, w - new_w)), int(np.random.uniform(0, h - new_h))
        x1, y1 = int(x0 + new_w), int(y0 + new_h)
        if x1 <= x0 or y1 <= y0:
            return None
        if len(boxes):
            ix = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
            iy = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
            inter = ix * iy
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            iou = inter / np.maximum(areas + (x1 - x0) * (y1 - y0) - inter, 1e-6)
            if iou.min() < min_iou:
                return None
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            if not ((cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)).any():
                return None
        return x0, y0, x1 - x0, y1 - y0


#: SSD's largest zoom-out ratio of the expand step (paper, supplementary S3)
SSD_EXPAND_MAX = 4.0


def ssd_train_augmentations(size: int, mean: Sequence[float], image_format: str = "BGR",
                            expand_max: float = SSD_EXPAND_MAX) -> list[T.Augmentation]:
    """SSD training augmentations for a ``size``² network; ``mean`` (0..255, ``image_format`` channel
    order) fills the expanded canvas. ``expand_max`` is the largest zoom-out ratio of the expand step
    (SSD's 4; 1 leaves the step out)."""
    if expand_max < 1:
        raise ConfigError(
            f"expand_max must be >= 1 (1: no expand step), got {expand_max}: set "
            "dataloader.train.mapper.augmentations.expand_max."
        )
    expand = [Expand(ratio_range=(1.0, expand_max), fill=tuple(mean))] if expand_max > 1 else []
    return [
        PhotometricDistortion(image_format=image_format),
        *expand,
        MinIoURandomCrop(min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
        T.Resize((size, size)),
        T.RandomFlip(prob=0.5, horizontal=True, vertical=False),
    ]


def ssd_test_augmentations(size: int) -> list[T.Augmentation]:
    """SSD test-time augmentation: resize to ``size``² ignoring the aspect ratio."""
    return [T.Resize((size, size))]

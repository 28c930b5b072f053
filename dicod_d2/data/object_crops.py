"""The teacher's classification data: every usable object box of a detection dataset, cropped on the fly.

Any detection dataset registered in detectron2's ``DatasetCatalog`` (COCO 2017, FashionDet, a user's
own) becomes a classification dataset of its objects. Nothing is written to disk: each item is one
detection image, read by a DataLoader worker, augmented as a whole with the student's detectron2
augmentations, and all its objects are cropped from it with
:func:`dicod_d2.layers.crop_boxes_roi_align` (the crop the student uses for KD_cls) and resized to
the teacher's input size ``s``. One image decode serves all its objects.

Filtering rule (:func:`object_drop_reason`), applied to every annotation of the detection dataset:

1. crowd annotations (``iscrowd=1``) are dropped;
2. boxes narrower or lower than 1 px (``w < 1`` or ``h < 1``, in the annotation's own pixels) are
   dropped;
3. boxes that do not overlap their image (zero-area intersection with ``[0, W] × [0, H]``) are
   dropped and reported (a warning names the first ones: such a box is an annotation error);
4. every other box is kept, clipped to its image, with its (contiguous) category.

This is MMDetection's ``CocoDataset`` rule (the authors' code base), expressed on detectron2's
dataset dicts. The paper reports 849,902 train / 36,334 val objects for COCO 2017, whose json files
hold 860,001 / 36,781 annotations: the rule must remove 10,099 train and 447 val annotations,
about 1.2 % of each, which is the share of crowd annotations in COCO; boxes under 1 px are a
handful. The exact counts have NOT been re-computed on the COCO files in this project (they are
not available here). The loader logs "N objects in M images ...; dropped: crowd a, smaller than
1 px b, outside its image c" for every split it reads: a COCO run shows the split of the 10,099.
The rule itself is tested on a hand-made json (``tests/data/test_object_crops.py``). Before the
rule, detectron2's own COCO json loader drops annotations whose polygon segmentation is invalid
(fewer than 3 points) and logs their number; they are in none of the counts above.

Items (:class:`ObjectCropMapper`), one per image::

    {"file_name": str, "image_id": ..., "crops": float32 [n, 3, s, s] (0..255, image_format),
     "labels": int64 [n], "unreadable": bool}

An unreadable image gives ``n = 0`` and ``unreadable=True`` (a warning names it); training and
evaluation skip it and count it.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.data.samplers import InferenceSampler
from detectron2.structures import BoxMode

from ..errors import ConfigError, DataError
from ..layers import crop_boxes_roi_align
from .datasets import thing_classes

__all__ = [
    "ObjectCropMapper",
    "build_crop_test_loader",
    "load_object_records",
    "object_drop_reason",
]

logger = logging.getLogger(__name__)

#: Drop reasons of :func:`object_drop_reason`, in the order they are checked.
DROP_REASONS = ("crowd", "smaller than 1 px", "outside its image")
_MAX_EXAMPLES = 5


def object_drop_reason(annotation: dict, height: int | None, width: int | None) -> str | None:
    """Why ``annotation`` (a detectron2 annotation dict) gives no crop, or None if it gives one.

    Args:
        annotation: with ``bbox``, ``bbox_mode`` and optionally ``iscrowd``.
        height, width: the image size in pixels (None: the overlap test is skipped).
    Returns:
        one of :data:`DROP_REASONS`, or None.
    """
    if annotation.get("iscrowd", 0):
        return DROP_REASONS[0]
    x0, y0, x1, y1 = BoxMode.convert(list(annotation["bbox"]), annotation["bbox_mode"], BoxMode.XYXY_ABS)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return DROP_REASONS[1]
    if height is not None and width is not None:
        if min(x1, width) - max(x0, 0) <= 0 or min(y1, height) - max(y0, 0) <= 0:
            return DROP_REASONS[2]
    return None


def _image_record(record: dict, dropped: Counter, outside: list[str]) -> dict:
    """One dataset dict -> ``{file_name, image_id, height, width, boxes [n,4] XYXY px, labels [n]}``."""
    height, width = record.get("height"), record.get("width")
    boxes, labels = [], []
    for ann in record.get("annotations", []):
        reason = object_drop_reason(ann, height, width)
        if reason is not None:
            dropped[reason] += 1
            if reason == DROP_REASONS[2] and len(outside) < _MAX_EXAMPLES:
                outside.append(f"'{record['file_name']}' ({width}x{height}): bbox {list(ann['bbox'])}")
            continue
        box = BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)
        if height is not None and width is not None:
            box = np.clip(box, 0, [width, height, width, height]).tolist()
        boxes.append(box)
        labels.append(int(ann["category_id"]))
    return {
        "file_name": record["file_name"],
        "image_id": record.get("image_id"),
        "height": height,
        "width": width,
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
    }


def _class_names(names: Sequence[str]) -> list[str]:
    classes = [thing_classes(n) for n in names]
    for name, other in zip(names[1:], classes[1:], strict=True):
        if other != classes[0]:
            raise DataError(
                f"datasets '{names[0]}' and '{name}' have different thing_classes; a classification "
                "dataset needs one class list: use datasets with the same classes in the same order"
            )
    return list(classes[0])


def load_object_records(
    names: str | Sequence[str], require_all_classes: bool = False
) -> list[dict]:
    """The images of registered detection datasets that hold at least one object to crop.

    Args:
        names: detectron2 dataset name(s); all must have the same ``thing_classes``.
        require_all_classes: raise when a class has no object (set it for a training split: the
            teacher could not learn that class); otherwise such classes are only warned about.
    Returns:
        one dict per image with at least one kept object: ``file_name``, ``image_id``, ``height``,
        ``width``, ``boxes`` float32 [n, 4] (XYXY pixels, clipped to the image), ``labels`` int64
        [n] (contiguous ids into the datasets' ``thing_classes``).
    """
    names = [names] if isinstance(names, str) else list(names)
    dicts = [DatasetCatalog.get(name) for name in names]  # loading sets thing_classes (COCO json)
    class_names = _class_names(names)
    dropped: Counter = Counter()
    outside: list[str] = []
    records = [_image_record(r, dropped, outside) for d in dicts for r in d]
    kept = [r for r in records if len(r["labels"])]
    counts = np.bincount(
        np.concatenate([r["labels"] for r in kept] or [np.zeros(0, np.int64)]),
        minlength=len(class_names),
    )
    if len(counts) > len(class_names):
        raise DataError(
            f"dataset(s) {names} have category ids up to {len(counts) - 1} but only "
            f"{len(class_names)} thing_classes: the annotations do not match the metadata"
        )
    logger.info(
        "Object crops of %s: %d objects in %d images (%d images without one skipped); dropped: %s",
        names,
        int(counts.sum()),
        len(kept),
        len(records) - len(kept),
        ", ".join(f"{reason} {dropped[reason]}" for reason in DROP_REASONS),
    )
    if outside:
        logger.warning(
            "%d boxes of %s lie outside their image and were dropped (annotation errors?), e.g. %s",
            dropped[DROP_REASONS[2]],
            names,
            "; ".join(outside),
        )
    missing = [c for c, n in zip(class_names, counts, strict=True) if n == 0]
    if missing:
        msg = (
            f"classes {missing} have no object in the crop split {names} ({int(counts.sum())} "
            "objects)"
        )
        if require_all_classes:
            raise DataError(
                msg + ": the teacher cannot learn them. Use a training split that covers every "
                "class of thing_classes (a larger preset or the full dataset)."
            )
        logger.warning("%s: their per-class accuracy is undefined (reported as nan)", msg)
    return kept


class ObjectCropMapper:
    """Reads one image record, augments the whole image, crops all its objects.

    Args:
        augmentations: detectron2 augmentations applied to the whole image (and its boxes),
            the student's own list (``configs/common/data/object_crops.py``: the Faster R-CNN /
            RetinaNet data config's ``mapper.augmentations``, or ``ssd_train_augmentations``).
        crop_size: ``s``, the side of the square crops (the teacher's input size), pixels.
        image_format: channel order the image is read in ("BGR", detectron2's default, or "RGB").

    ``__call__(record)`` returns ``{"file_name", "image_id", "crops": float32 [n, 3, s, s] on the
    0..255 scale in ``image_format``, "labels": int64 [n], "areas": float32 [n] (the augmented boxes'
    areas in pixels², for accuracy by object size), "unreadable": bool}``. Objects whose box
    an augmentation removed (SSD's crop, see ``ssd_augment.CenterCropTransform``) or left empty
    are dropped. The crops are ``crop_boxes_roi_align`` of the augmented boxes (clipped to the
    augmented image), exactly the crops the student takes for KD_cls.
    """

    def __init__(
        self, augmentations: Iterable[T.Augmentation], crop_size: int, image_format: str = "BGR"
    ):
        if image_format not in ("BGR", "RGB"):
            raise ConfigError(f"image_format must be 'BGR' or 'RGB', got {image_format!r}")
        if int(crop_size) < 1:
            raise ConfigError(f"crop_size must be a positive number of pixels, got {crop_size}")
        self.augmentations = T.AugmentationList(list(augmentations))
        self.crop_size = int(crop_size)
        self.image_format = image_format

    def _empty(self, record: dict, unreadable: bool) -> dict:
        return {
            "file_name": record["file_name"],
            "image_id": record.get("image_id"),
            "crops": torch.zeros((0, 3, self.crop_size, self.crop_size)),
            "labels": torch.zeros((0,), dtype=torch.long),
            "areas": torch.zeros((0,)),
            "unreadable": unreadable,
        }

    def __call__(self, record: dict) -> dict:
        record = copy.copy(record)
        try:
            image = utils.read_image(record["file_name"], format=self.image_format)
        except (OSError, ValueError, SyntaxError) as e:  # missing, truncated, not an image
            logger.warning(
                "Skipping unreadable image '%s' and its %d objects (%s: %s)",
                record["file_name"],
                len(record["labels"]),
                type(e).__name__,
                e,
            )
            return self._empty(record, unreadable=True)
        utils.check_image_size(record, image)
        aug_input = T.AugInput(image, boxes=record["boxes"].copy())
        self.augmentations(aug_input)
        image, boxes = aug_input.image, np.asarray(aug_input.boxes, dtype=np.float32)
        height, width = image.shape[:2]
        boxes = np.clip(boxes, 0, [width, height, width, height])
        keep = ((boxes[:, 2] - boxes[:, 0]) > 1e-5) & ((boxes[:, 3] - boxes[:, 1]) > 1e-5)
        if not keep.any():
            return self._empty(record, unreadable=False)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]
        boxes_t = torch.from_numpy(boxes[keep])
        crops = crop_boxes_roi_align(
            tensor, boxes_t, torch.zeros(len(boxes_t), dtype=torch.long), self.crop_size
        )
        out = self._empty(record, unreadable=False)
        out["crops"] = crops
        out["labels"] = torch.from_numpy(record["labels"][keep])
        out["areas"] = (boxes_t[:, 2] - boxes_t[:, 0]) * (boxes_t[:, 3] - boxes_t[:, 1])
        return out


def _trivial_collate(batch: list) -> list:
    return batch


def build_crop_test_loader(
    dataset: list[dict], mapper: ObjectCropMapper, batch_size: int = 8, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """An inference loader over image records: each image once (split across processes), in
    batches of ``batch_size`` images (lists of mapped dicts)."""
    mapped = MapDataset(DatasetFromList(dataset, copy=False), mapper)
    batch_sampler = torch.utils.data.BatchSampler(
        InferenceSampler(len(mapped)), batch_size, drop_last=False
    )
    return torch.utils.data.DataLoader(
        mapped, num_workers=num_workers, batch_sampler=batch_sampler, collate_fn=_trivial_collate
    )

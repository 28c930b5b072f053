"""A detectron2 ``DatasetMapper`` whose augmentations see the ground-truth boxes.

detectron2's :class:`~detectron2.data.DatasetMapper` builds ``T.AugInput(image)`` without boxes, so
box-dependent augmentations such as SSD's min-IoU random crop
(:class:`dicod_d2.data.transforms.MinIoURandomCrop`) cannot run in it. :class:`BoxAugDatasetMapper`
is the same mapper (same arguments, same annotation handling through
``DatasetMapper._transform_annotations``: clipping, crowd removal, ``filter_empty_instances``) that
passes the image's non-crowd boxes to the augmentations.

:class:`SkipUnreadableImages` wraps any detectron2 mapper so that an image whose pixels cannot be
read (missing, truncated after a valid header, not an image) is skipped with a warning naming it
instead of failing the DataLoader worker; :func:`drop_unreadable` removes the skipped images from a
batch, where the training loop and the evaluation count them.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from PIL import Image

from ..errors import ConfigError, DataError

__all__ = ["UNREADABLE", "BoxAugDatasetMapper", "SkipUnreadableImages", "annotation_boxes",
           "drop_unreadable", "pixels_problem"]

logger = logging.getLogger(__name__)

#: key of the record :class:`SkipUnreadableImages` gives for an unreadable image (the reason)
UNREADABLE = "unreadable_image"


def annotation_boxes(annotations: list[dict]) -> np.ndarray:
    """[N, 4] float64 XYXY absolute-pixel boxes of the non-crowd ``annotations`` (detectron2
    dataset-dict format, any ``bbox_mode``), in order; [0, 4] when there is none."""
    boxes = [
        BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
        for a in annotations
        if a.get("iscrowd", 0) == 0
    ]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


class BoxAugDatasetMapper(DatasetMapper):
    """``DatasetMapper`` for box detection whose ``AugInput`` carries ``boxes`` (see module docstring).

    Takes ``DatasetMapper``'s arguments; pre-computed proposals and semantic segmentation are not
    supported. At test time (``is_train=False``) the boxes are still given to the augmentations when
    the dataset dict has annotations, then the annotations are dropped as ``DatasetMapper`` does.
    """

    def __init__(self, is_train: bool, **kwargs):
        super().__init__(is_train, **kwargs)
        if self.proposal_topk is not None:
            raise ConfigError(
                "BoxAugDatasetMapper does not support precomputed proposals: remove the mapper's "
                "precomputed_proposal_topk (or use detectron2's DatasetMapper)."
            )

    def __call__(self, dataset_dict: dict) -> dict:
        """detectron2 dataset dict → model input: ``image`` uint8 [3, H, W] in ``image_format`` and,
        in training, ``instances`` (gt_boxes XYXY pixels of the augmented image, gt_classes)."""
        if "sem_seg_file_name" in dataset_dict:
            raise DataError(
                f"BoxAugDatasetMapper does not support semantic segmentation: the dataset record of "
                f"'{dataset_dict.get('file_name')}' has a sem_seg_file_name; use a detection dataset."
            )
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image, boxes=annotation_boxes(dataset_dict.get("annotations", [])))
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image.shape[:2])
        return dataset_dict


def pixels_problem(file_name: str) -> str | None:
    """Why the pixels of ``file_name`` cannot be read (missing, truncated, not an image), else None.

    Decodes the whole image, unlike the header check of :func:`dicod_d2.data.coco_json.image_problem`
    (a file cut after its header passes that one)."""
    try:
        with Image.open(file_name) as im:
            im.load()
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated or corrupt data
        return f"{type(e).__name__}: {e}"
    return None


class SkipUnreadableImages:
    """A detectron2 mapper that skips images whose pixels cannot be read.

    ``mapper(dataset_dict)`` as given; when it raises and the image cannot be decoded
    (:func:`pixels_problem`), a warning names the file and the result is ``{UNREADABLE: reason}``
    with the record's ``file_name``, ``image_id``, ``width`` and ``height`` (detectron2's
    aspect-ratio grouping reads the last two), for :func:`drop_unreadable` to remove. Any other
    failure of the mapper (a bug, a size that disagrees with the annotations) is raised as it is.
    """

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, dataset_dict: dict) -> dict:
        try:
            return self.mapper(dataset_dict)
        except Exception:
            problem = pixels_problem(dataset_dict["file_name"])
            if problem is None:
                raise
        logger.warning("Skipping unreadable image '%s' (%s)", dataset_dict["file_name"], problem)
        kept = {k: dataset_dict[k] for k in ("file_name", "image_id") if k in dataset_dict}
        return {**kept, "width": dataset_dict.get("width", 0), "height": dataset_dict.get("height", 0),
                UNREADABLE: problem}


def drop_unreadable(batch: list[dict]) -> tuple[list[dict], int]:
    """``batch`` without the records of skipped images, and how many there were."""
    kept = [d for d in batch if UNREADABLE not in d]
    return kept, len(batch) - len(kept)

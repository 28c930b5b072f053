"""Data augmentations (detectron2 ``Augmentation`` / ``Transform`` classes)."""
from .ssd_augment import (
    CenterCropTransform,
    Expand,
    ExpandTransform,
    MinIoURandomCrop,
    PhotometricDistortion,
    PhotometricTransform,
    ssd_test_augmentations,
    ssd_train_augmentations,
)

__all__ = [
    "CenterCropTransform",
    "Expand",
    "ExpandTransform",
    "MinIoURandomCrop",
    "PhotometricDistortion",
    "PhotometricTransform",
    "ssd_test_augmentations",
    "ssd_train_augmentations",
]

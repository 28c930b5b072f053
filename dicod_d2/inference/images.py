"""Read images like detectron2 (the inputs of ``tools/predict.py`` and of the evaluations on files).

:func:`read_image` is detectron2's ``read_image`` (EXIF rotation, then conversion to the model's
channel order; grayscale and RGBA become 3 channels) plus 16-bit images, which PIL would clip to
white when converting: they are scaled to 8 bits first.
"""
from __future__ import annotations

import os

import numpy as np
from detectron2.data.detection_utils import _apply_exif_orientation, convert_PIL_to_numpy
from PIL import Image, UnidentifiedImageError

__all__ = ["UnreadableImage", "read_image"]

class UnreadableImage(Exception):
    """A file that is not an image PIL can decode; the message names the file and the reason."""


def read_image(path: str | os.PathLike, image_format: str) -> np.ndarray:
    """[H, W, 3] uint8 in ``image_format`` ("BGR" or "RGB") after EXIF rotation.

    Raises:
        UnreadableImage: the file cannot be decoded as an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            image = _apply_exif_orientation(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                array = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
                image = Image.fromarray((array * (255.0 / peak)).round().clip(0, 255).astype(np.uint8))
            return np.ascontiguousarray(convert_PIL_to_numpy(image, image_format))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(f"{path}: {type(e).__name__}: {e}") from e

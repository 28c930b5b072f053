"""Fashion-MNIST (Xiao et al. 2017, MIT licence) read from the Debian package ``dataset-fashion-mnist``.

The four gzip IDX files live in ``/usr/share/datasets/fashion-mnist`` unless the environment variable
``FASHION_MNIST_DIR`` names another folder. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""The ten class names, in Fashion-MNIST's label order (label ``i`` is ``FASHION_MNIST_CLASSES[i]``)."""

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILE_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_OFFSET, _LABEL_OFFSET = 16, 8  # IDX header sizes in bytes


def fashion_mnist_dir() -> Path:
    """The folder holding the IDX files: ``$FASHION_MNIST_DIR`` if set, else the Debian location."""
    return Path(os.environ.get("FASHION_MNIST_DIR") or DEFAULT_DIR)


def _read_idx(path: Path, offset: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST file '{path}' is missing. Install it with "
            "`apt-get install dataset-fashion-mnist` (Debian), or set FASHION_MNIST_DIR to a folder "
            "holding train-/t10k-{images-idx3,labels-idx1}-ubyte.gz."
        )
    with gzip.open(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = _FILE_PREFIX[split]
    images = _read_idx(Path(folder) / f"{prefix}-images-idx3-ubyte.gz", _IMAGE_OFFSET)
    labels = _read_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz", _LABEL_OFFSET)
    images = images.reshape(-1, 28, 28)
    if len(images) != len(labels):
        raise DataError(
            f"Fashion-MNIST '{split}' in '{folder}' is inconsistent: {len(images)} images but "
            f"{len(labels)} labels. Reinstall `dataset-fashion-mnist`."
        )
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split.

    Args:
        split: ``"train"`` (60,000 items) or ``"test"`` (10,000 items, the ``t10k`` files).

    Returns:
        ``(images, labels)``: read-only ``uint8[N, 28, 28]`` (0 = black background, 255 = brightest)
        and ``int64[N]`` class indices into :data:`FASHION_MNIST_CLASSES`. Cached per folder and split.
    """
    if split not in _FILE_PREFIX:
        raise ValueError(f"unknown Fashion-MNIST split '{split}'; use 'train' or 'test'.")
    return _load_cached(str(fashion_mnist_dir()), split)

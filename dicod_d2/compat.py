"""Compatibility of detectron2 0.6 with the current stack, applied in one place.

detectron2 0.6 predates Pillow 10, numpy 2, Python 3.11 and torch 2. :func:`apply_compat` restores
what it needs; it runs before any detectron2 code, from a hook that ``tools/install_detectron2.py``
adds at the top of ``detectron2/__init__.py`` (so a plain ``import detectron2.modeling`` gets it),
and again from ``import dicod_d2`` (for a detectron2 built elsewhere). It only adds missing names,
never replaces existing ones, and is idempotent.

- Pillow >= 10 removed ``Image.LINEAR`` (a default argument in ``detectron2.data.transforms``,
  evaluated at import time).
- numpy 2 removed the aliases ``np.int``, ``np.float``, ``np.str``, ``np.object``; detectron2 uses
  them in the class histogram it logs when loading a dataset (the error is swallowed there, so the
  histogram silently disappears), the Pascal VOC loader and the semantic-segmentation evaluator.
- setuptools < 81 keeps ``pkg_resources`` (``detectron2.model_zoo`` imports it) but warns: silenced,
  as is torch's deprecation warning for the ``torch.jit.script`` calls detectron2 makes at import.
- ``MapDataset`` retries a sample whose mapper returned None with ``random.sample(set, k=1)``, a
  TypeError on Python >= 3.11: :func:`patch_map_dataset` fixes it once ``detectron2.data`` is
  imported (``dicod_d2.data`` calls it).
"""
from __future__ import annotations

import functools
import random
import warnings

import numpy as np
from PIL import Image

_NUMPY_ALIASES = {"int": int, "float": float, "str": str, "object": object}


def apply_compat() -> None:
    """Add the names detectron2 0.6 expects to Pillow and numpy (idempotent)."""
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    # detectron2 0.6 scripts a few helpers with torch.jit.script at import time (deprecated in torch 2.10+)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)


class _SetSamplingRandom(random.Random):
    """``random.Random`` whose ``sample`` also accepts a set, as it did before Python 3.11."""

    def sample(self, population, k, **kwargs):
        if isinstance(population, (set, frozenset)):
            population = sorted(population)
        return super().sample(population, k, **kwargs)


def patch_map_dataset() -> None:
    """Make detectron2's ``MapDataset`` fallback work on Python >= 3.11 (idempotent)."""
    from detectron2.data.common import MapDataset

    if getattr(MapDataset, "_dicod_set_sampling", False):
        return
    original_init = MapDataset.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._rng = _SetSamplingRandom(42)

    MapDataset.__init__ = __init__
    MapDataset._dicod_set_sampling = True


apply_compat()

"""A mapped dataset whose items' random augmentations depend on the item's seed alone.

detectron2's ``MapDataset`` maps an item with whatever state the RNGs of the DataLoader worker (or
of the main process) have reached, and replaces an item its mapper rejects (``None``) by one drawn
from a pool that depends on what the worker mapped before. :class:`SeededMapDataset` takes keys
``(index, seed)`` (from :class:`dicod_d2.data.samplers.ResumableTrainingSampler`) and maps
``dataset[index]`` with Python's, NumPy's and torch's CPU RNGs seeded by ``seed``, replacements
included, then restores the RNG states it found: an item is augmented the same way in a fresh or a
resumed run, by any worker or process, and mapping in the main process leaves its RNGs alone.
"""
from __future__ import annotations

import itertools
import logging
import random
from typing import Callable

from torch.utils.data import Dataset

from ..utils.rng import rngs_kept, seed_rngs

__all__ = ["SeededMapDataset"]

logger = logging.getLogger(__name__)


class SeededMapDataset(Dataset):
    """``mapper(dataset[index])`` for keys ``(index, seed)``, the RNGs seeded by ``seed``.

    Args:
        dataset: a map-style dataset (e.g. detectron2's ``DatasetFromList`` of dataset dicts).
        mapper: dataset dict → model input, or None to reject the item: it is replaced by the item
            of an index drawn (with the seeded ``random``) until the mapper accepts one. None: the
            items as they are.
    """

    def __init__(self, dataset: Dataset, mapper: Callable | None):
        self.dataset = dataset
        self.mapper = mapper

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with rngs_kept():
            seed_rngs(seed)
            for attempt in itertools.count(1):
                item = self.dataset[index]
                mapped = item if self.mapper is None else self.mapper(item)
                if mapped is not None:
                    return mapped
                if attempt % 3 == 0:
                    logger.warning("The mapper rejected %d items in a row for key (%d, %d)",
                                   attempt, key[0], seed)
                index = random.randrange(len(self.dataset))

"""A training sampler whose stream can start where an interrupted run stopped, with a seed per item.

detectron2's ``TrainingSampler`` is an infinite, seeded stream of shuffled dataset indices; process
``r`` of ``R`` takes items ``r, r + R, …`` of it. With ``W`` DataLoader workers, detectron2's
``ToIterableDataset`` gives worker ``w`` the items ``w, w + W, …`` of the process's stream, and the
DataLoader takes one fetch from each worker in turn: one item when ``build_detection_train_loader``
groups images by aspect ratio in the main process (its default), one batch otherwise.

A resumed run built with a fresh ``TrainingSampler`` starts the stream again;
:class:`ResumableTrainingSampler` continues it at item ``start_item`` of the process's stream: each
worker yields exactly what it would have yielded in an uninterrupted run (same seed, number of
processes, workers and batch size). With one aspect-ratio group (FashionDet) the batches are then
those of the uninterrupted run; with several (COCO), the images that waited in a partly filled group
at the interruption are skipped, the stream position is kept.

Each item comes with the seed of its augmentation, derived from the sampler's seed and the item's
position in the stream (shared by all processes): :class:`dicod_d2.data.seeded_map.SeededMapDataset`
seeds the RNGs with it before mapping the item, so the random augmentations of a resumed run are
those of the uninterrupted one too, whatever process or DataLoader worker maps the item.
"""
from __future__ import annotations

import itertools
from typing import Iterator

from detectron2.data.samplers import TrainingSampler
from torch.utils.data import get_worker_info

from ..utils.rng import ITEM, derive_seed

__all__ = ["ResumableTrainingSampler"]


class ResumableTrainingSampler(TrainingSampler):
    """``TrainingSampler`` whose stream, in this process, starts at item ``start_item``, and whose
    items are ``(dataset index, augmentation seed)`` pairs (for a ``SeededMapDataset``).

    Args:
        size: dataset length.
        start_item: items of this process's stream already used (a resumed run starting at
            iteration ``i`` with ``b`` images per process and iteration: ``i · b``); may be set after
            construction, before the loader is iterated.
        items_per_fetch: items a DataLoader worker returns per fetch: 1 with aspect-ratio grouping
            (detectron2's default), the per-process batch size without; ``start_item`` must be a
            multiple of it.
        shuffle, seed: as ``TrainingSampler`` (``seed=None``: a seed shared by all processes).
    """

    def __init__(self, size: int, start_item: int = 0, items_per_fetch: int = 1,
                 shuffle: bool = True, seed: int | None = None):
        super().__init__(size, shuffle=shuffle, seed=seed)
        if items_per_fetch < 1:
            raise ValueError(f"items_per_fetch must be positive, got {items_per_fetch}")
        self.start_item = int(start_item)
        self.items_per_fetch = int(items_per_fetch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.start_item % self.items_per_fetch:
            raise ValueError(f"start_item {self.start_item} is not a multiple of items_per_fetch "
                             f"{self.items_per_fetch}")
        # (position in the stream of all processes, dataset index) of this process's items
        stream = itertools.islice(enumerate(self._infinite_indices()), self._rank, None, self._world_size)
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        # fetch F + worker of the uninterrupted run came from worker `source` of that run, after
        # `done` fetches of its items (source, source + W, ...)
        first_fetch = self.start_item // self.items_per_fetch
        source = (first_fetch + worker) % workers
        done = (first_fetch + worker) // workers
        mine = itertools.islice(stream, source + workers * self.items_per_fetch * done, None, workers)
        # ToIterableDataset keeps items worker, worker + W, ... of what this worker's copy yields:
        # with W workers, each item is repeated W times so that the kept ones are exactly `mine`
        for position, index in mine:
            item = (int(index), derive_seed(self._seed, ITEM, position))
            for _ in range(workers):
                yield item

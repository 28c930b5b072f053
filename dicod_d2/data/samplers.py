"""A training sampler whose stream can start where an interrupted run stopped.

detectron2's ``TrainingSampler`` is an infinite, seeded stream of shuffled dataset indices; process
``r`` of ``R`` takes items ``r, r + R, …`` of it, and with ``W`` DataLoader workers detectron2's
``ToIterableDataset`` gives worker ``w`` items ``w, w + W, …`` of the process's stream; the DataLoader
takes one batch from each worker in turn. A resumed run built with a fresh ``TrainingSampler`` starts
the stream again; :class:`ResumableTrainingSampler` instead continues it at batch ``start_batch``:
each process and worker yields exactly the items an uninterrupted run would have used from that
batch on (same seed, number of processes, workers and batch size). It is exact when every image falls
in one aspect-ratio group (FashionDet); with detectron2's aspect-ratio grouping (COCO), images that
waited in a partly filled group at the interruption are not seen again, the stream position is kept.
"""
from __future__ import annotations

import itertools
from typing import Iterator

from detectron2.data.samplers import TrainingSampler
from torch.utils.data import get_worker_info

__all__ = ["ResumableTrainingSampler"]


class ResumableTrainingSampler(TrainingSampler):
    """``TrainingSampler`` that skips the first ``start_batch`` batches of this process's stream.

    Args:
        size: dataset length.
        batch_size: images per batch in this process (total batch size / number of processes).
        start_batch: the first batch to produce (the iteration a resumed run starts at); may be
            set after construction, before the loader is iterated.
        shuffle, seed: as ``TrainingSampler`` (``seed=None``: a seed shared by all processes).
    """

    def __init__(self, size: int, batch_size: int, start_batch: int = 0, shuffle: bool = True,
                 seed: int | None = None):
        super().__init__(size, shuffle=shuffle, seed=seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        self.start_batch = int(start_batch)

    def __iter__(self) -> Iterator[int]:
        stream = itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        # batch start_batch + worker of the uninterrupted run comes from worker `source` of that run,
        # which produced `done` batches of its items (source, source + W, ...) before it
        source = (self.start_batch + worker) % workers
        done = (self.start_batch + worker) // workers
        mine = itertools.islice(stream, source + workers * self.batch_size * done, None, workers)
        if info is None or workers == 1:
            yield from mine
            return
        # ToIterableDataset keeps items worker, worker + W, ... of what this worker's copy yields:
        # repeat each item W times so that the kept ones are exactly `mine`
        for index in mine:
            for _ in range(workers):
                yield index

"""A resumed sampler continues the stream: the batches, and each item's random augmentation, equal
the uninterrupted run's from that point, whatever the number of DataLoader workers."""
import itertools
import random

import numpy as np
import pytest
import torch
from detectron2.data import DatasetFromList, build_detection_train_loader

from dicod_d2.data.samplers import ResumableTrainingSampler
from dicod_d2.data.seeded_map import SeededMapDataset

DATA = [{"file_name": str(i), "height": 8, "width": 8} for i in range(13)]  # 13: epochs wrap mid-batch


def _augment(record: dict) -> dict:
    """A mapper that draws from each RNG an augmentation may use."""
    return {**record, "draws": (random.random(), float(np.random.rand()), float(torch.rand(())))}


def _batches(start_iter: int, count: int, workers: int, grouping: bool, seed: int = 3) -> list:
    sampler = ResumableTrainingSampler(len(DATA), start_item=2 * start_iter,
                                       items_per_fetch=1 if grouping else 2, seed=seed)
    loader = build_detection_train_loader(dataset=SeededMapDataset(DatasetFromList(DATA), _augment),
                                          mapper=None, sampler=sampler, total_batch_size=2,
                                          num_workers=workers, aspect_ratio_grouping=grouping)
    return [[(d["file_name"], d["draws"]) for d in batch] for batch in itertools.islice(loader, count)]


@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("grouping", [True, False])
def test_resumed_stream_and_augmentations_equal_the_uninterrupted_ones(workers, grouping):
    uninterrupted = _batches(0, 9, workers, grouping)
    assert len({name for b in uninterrupted for name, _ in b}) == len(DATA)
    draws = [d for b in uninterrupted for _, d in b]
    assert len(set(draws)) == len(draws), "two items of the stream drew the same numbers"
    for start in (1, 2, 3, 4):
        assert _batches(start, 9 - start, workers, grouping) == uninterrupted[start:], start
    # the same items with the same draws with one worker (batched differently without grouping:
    # a worker's batch holds its own items), other draws with another seed
    assert sorted(sum(_batches(0, 6, 1, grouping), [])) == sorted(sum(uninterrupted[:6], []))
    assert [d for b in _batches(0, 9, workers, grouping, seed=4) for _, d in b][0] != draws[0]


def test_start_must_be_a_whole_fetch():
    sampler = ResumableTrainingSampler(len(DATA), start_item=3, items_per_fetch=2, seed=0)
    with pytest.raises(ValueError, match="multiple of items_per_fetch"):
        next(iter(sampler))

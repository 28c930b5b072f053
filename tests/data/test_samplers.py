"""A resumed sampler continues the stream: the batches equal the uninterrupted run's from that point."""
import itertools

import pytest
from detectron2.data import build_detection_train_loader

from dicod_d2.data.samplers import ResumableTrainingSampler

DATA = [{"file_name": str(i), "height": 8, "width": 8} for i in range(13)]  # 13: epochs wrap mid-batch


def _batches(start_iter: int, count: int, workers: int, grouping: bool) -> list:
    sampler = ResumableTrainingSampler(len(DATA), start_item=2 * start_iter,
                                       items_per_fetch=1 if grouping else 2, seed=3)
    loader = build_detection_train_loader(dataset=DATA, mapper=lambda d: d, sampler=sampler,
                                          total_batch_size=2, num_workers=workers,
                                          aspect_ratio_grouping=grouping)
    return [[d["file_name"] for d in batch] for batch in itertools.islice(loader, count)]


@pytest.mark.parametrize("workers", [0, 2, 3])
@pytest.mark.parametrize("grouping", [True, False])
def test_resumed_stream_equals_the_uninterrupted_one(workers, grouping):
    uninterrupted = _batches(0, 9, workers, grouping)
    assert len({tuple(b) for b in uninterrupted}) > 5
    for start in (1, 2, 3, 4):
        assert _batches(start, 9 - start, workers, grouping) == uninterrupted[start:], start


def test_start_must_be_a_whole_fetch():
    sampler = ResumableTrainingSampler(len(DATA), start_item=3, items_per_fetch=2, seed=0)
    with pytest.raises(ValueError, match="multiple of items_per_fetch"):
        next(iter(sampler))

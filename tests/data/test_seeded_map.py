"""SeededMapDataset: an item's augmentation and its replacement, when the mapper rejects it, depend on
the item's seed only; the caller's RNGs are left as they were."""
import random

import numpy as np
import torch

from dicod_d2.data.seeded_map import SeededMapDataset

DATA = list(range(20))


def _reject_odd(value: int):
    """Odd values are rejected (None); even ones come with a draw of each RNG."""
    if value % 2:
        return None
    return value, random.random(), float(np.random.rand()), float(torch.rand(()))


def test_an_item_depends_on_its_seed_only_and_leaves_the_rngs_alone():
    dataset = SeededMapDataset(DATA, _reject_odd)
    first = [dataset[(i, 100 + i)] for i in range(len(DATA))]
    assert all(item[0] % 2 == 0 for item in first)  # odd items replaced by accepted ones
    assert {item[0] for i, item in enumerate(first) if i % 2} - {0}, "no replacement"
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    # another dataset that mapped other keys before, in another order: the same items
    other = SeededMapDataset(DATA, _reject_odd)
    other[(3, 7)], other[(5, 9)]
    assert [other[(i, 100 + i)] for i in reversed(range(len(DATA)))] == first[::-1]
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    assert dataset[(0, 1)] != dataset[(0, 2)]


def test_without_a_mapper_the_items_are_returned_as_they_are():
    assert SeededMapDataset(DATA, None)[(4, 0)] == 4

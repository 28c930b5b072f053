"""Seeds derived from a run's seed and a position in the run, and the process-wide RNGs they seed.

Augmentations draw from Python's ``random``, NumPy's global RNG and torch's CPU generator; models
draw from torch's CPU and CUDA generators. Seeding them from (run seed, position) where a draw
happens (an item of the data stream, an iteration of a process) makes every draw a function of
that position alone: a resumed run repeats the draws of the uninterrupted one without carrying
RNG states, whatever the number of DataLoader workers.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

__all__ = ["ITEM", "STEP", "derive_seed", "rngs_kept", "seed_rngs"]

#: first key of :func:`derive_seed` for the augmentation of a data-stream item ``(ITEM, position)``
ITEM = 1
#: first key of :func:`derive_seed` for an iteration of a process ``(STEP, rank, iteration)``
STEP = 2


def derive_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for ``keys`` (non-negative ints, e.g. ``ITEM, position``) in the run of ``seed``.

    NumPy's ``SeedSequence`` hash: any change of ``seed`` or of a key gives an unrelated seed. It pads
    short key lists with zeros, so each kind of position starts with its own non-zero tag
    (:data:`ITEM`, :data:`STEP`)."""
    high, low = np.random.SeedSequence([seed, *keys]).generate_state(2)
    return (int(high) << 32) | int(low)


def seed_rngs(seed: int, cuda: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch's CPU generator with the 64-bit
    ``seed``; with ``cuda``, also every CUDA device's generator (lazily when CUDA is not set up)."""
    random.seed(seed)
    np.random.seed([seed >> 32, seed & 0xFFFFFFFF])
    torch.default_generator.manual_seed(seed)
    if cuda:
        torch.cuda.manual_seed_all(seed)


@contextmanager
def rngs_kept() -> Iterator[None]:
    """Restore Python's, NumPy's and torch's CPU RNG states on exit (CUDA's are not touched)."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])

"""What makes a resumed run repeat the uninterrupted one exactly, beyond the checkpoint's weights,
optimizer, scheduler and iteration.

* The images and their augmentations: the data stream continues at the resumed iteration's item
  and each item is augmented with its own seed (:mod:`dicod_d2.data.samplers`,
  :mod:`dicod_d2.data.seeded_map`); reading the data leaves the training's RNGs alone.
* The model's random draws (detectron2's sampling of proposals and anchors, the distiller's choice
  of positives): :class:`SeedEachIteration` seeds every RNG of a process from (run seed, rank,
  iteration) before each iteration, so no RNG state needs to be saved and what happens between two
  iterations (an evaluation, a checkpoint) changes nothing.
* The logged losses: detectron2's writers log the median of the last 20 values;
  :class:`KeepMetricWindows` saves the last values of every metric in the checkpoint and puts them
  back on resume, so ``metrics.json`` and the log continue as in the uninterrupted run.

Exact on one machine with the same number of processes, workers, batch size and a fixed
``train.seed`` (a negative seed draws a new run seed when resuming), given deterministic kernels.
"""
from __future__ import annotations

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..utils.rng import STEP, derive_seed, seed_rngs

__all__ = ["METRIC_WINDOW", "KeepMetricWindows", "SeedEachIteration"]

#: values per metric that detectron2's writers (``default_writers``) smooth over
METRIC_WINDOW = 20


class SeedEachIteration(HookBase):
    """Before each iteration, seed this process's Python, NumPy and torch (CPU, CUDA) RNGs from
    ``(seed, rank, iteration)``; ``seed`` is the run's seed, the same on every process. Register it
    first."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def before_step(self):
        seed_rngs(derive_seed(self.seed, STEP, comm.get_rank(), self.trainer.iter), cuda=True)


class KeepMetricWindows(HookBase):
    """Save the last ``METRIC_WINDOW`` ``(value, iteration)`` pairs of every metric of the trainer's
    event storage with the trainer's checkpoint state; a resumed run puts them back before its
    first iteration, so its smoothed values are the uninterrupted run's."""

    def __init__(self):
        self._restored: dict[str, list] = {}

    def state_dict(self) -> dict:
        return {name: list(history.values()[-METRIC_WINDOW:])
                for name, history in self.trainer.storage.histories().items()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = dict(state_dict)

    def before_train(self):
        histories = self.trainer.storage.histories()
        for name, values in self._restored.items():
            for value, iteration in values:
                histories[name].update(value, iteration)
        self._restored = {}

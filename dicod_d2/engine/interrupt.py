"""Stop training cleanly on SIGTERM / SIGINT: after the current iteration, on every process.

The signal may reach one process only (a scheduler preempting one machine, the launcher's death
delivered to its workers); the processes agree on it after each iteration (one all-reduce of an
int over detectron2's CPU gloo group), rank 0 writes a checkpoint of the finished iteration
(atomically), every process passes a barrier and the run ends with :class:`TrainingInterrupted`.
"""
from __future__ import annotations

import logging
import signal

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["STOP_SIGNALS", "StopOnSignal", "TrainingInterrupted"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
logger = logging.getLogger("dicod_d2")


class TrainingInterrupted(BaseException):
    """Training stopped on a signal after a clean checkpoint; not an error.

    Like ``KeyboardInterrupt`` it derives from ``BaseException``, so generic error handlers (and
    detectron2's "Exception during training" log) let it through. ``exit_code`` is ``128 + signum``.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @classmethod
    def from_exit_code(cls, code: int) -> "TrainingInterrupted | None":
        """The interruption a process's exit code stands for, or None."""
        signum = code - 128
        return cls(signum) if signum in STOP_SIGNALS else None


def _max_over_processes(value: int) -> int:
    if comm.get_world_size() == 1:
        return value
    flag = torch.tensor([value], dtype=torch.int64)
    # detectron2's CPU group: no CUDA transfer and no GPU sync with NCCL training
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=comm._get_global_gloo_group())
    return int(flag.item())


class StopOnSignal(HookBase):
    """Record SIGTERM / SIGINT during training; after the iteration, checkpoint and stop everywhere.

    Register it after the checkpointer and evaluation, before the writer. The handlers are installed in ``before_train`` and restored in ``after_train``
    (before and after training, the signals act as usual).
    """

    def __init__(self, checkpointer, output_dir: str):
        self._checkpointer = checkpointer
        self._output_dir = output_dir
        self._signum = 0
        self._previous: dict = {}

    def _record(self, signum, frame) -> None:
        self._signum = signum

    def before_train(self):
        self._signum = 0
        self._previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}

    def after_train(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def after_step(self):
        signum = _max_over_processes(self._signum)
        if not signum:
            return
        iteration = self.trainer.iter
        name = f"model_{iteration:07d}"
        if comm.is_main_process():
            self._checkpointer.save(name, iteration=iteration)
        comm.synchronize()
        message = (
            f"interrupted by {signal.Signals(signum).name} at iteration {iteration} "
            f"(checkpoint {name}.pth): resume with --resume (output dir {self._output_dir})"
        )
        if comm.is_main_process():
            logger.warning(message)
        raise TrainingInterrupted(signum, message)

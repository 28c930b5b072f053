"""A run stopped by a signal and resumed is bit-identical to the uninterrupted run: the logged losses
of every iteration and every tensor of model_final.pth (one process with 0 or 2 DataLoader workers,
two processes)."""
import json
import sys
from pathlib import Path

import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES, signal_at_iteration

from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.interrupt import TrainingInterrupted
from dicod_d2.engine.launch import launch
from dicod_d2.engine.train_loop import main

sys.path.insert(0, str(Path(__file__).parent))  # spawned children inherit sys.path
from _dist_worker import train_stopped_and_resumed  # noqa: E402

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")
MAX_ITER, STOP_AT = 5, 2
#: metrics.json keys that measure time, not the training
TIMINGS = ("time", "data_time", "eta_seconds")


def _argv(out, workers: int) -> list:
    return [*TINY_OVERRIDES, f"train.output_dir={out}", f"train.max_iter={MAX_ITER}",
            f"dataloader.train.num_workers={workers}", "train.eval_period=0",
            "train.checkpointer.period=100"]


def _metrics(out) -> list:
    """Each line of ``out``/metrics.json without its timings."""
    lines = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in TIMINGS} for m in lines]


def _tensors(value, path="") -> dict:
    """Every tensor in a (nested) checkpoint, by its path of keys."""
    if isinstance(value, torch.Tensor):
        return {path: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    return {k: t for key, v in items for k, t in _tensors(v, f"{path}/{key}").items()}


def _assert_bit_identical(uninterrupted, resumed) -> None:
    metrics = _metrics(uninterrupted)
    losses = [m for m in metrics if "total_loss" in m]
    assert [m["iteration"] for m in losses] == list(range(MAX_ITER))
    assert all(m["total_loss"] > 0 and "loss_cls" in m for m in losses)
    assert _metrics(resumed) == metrics
    final = [torch.load(out / "model_final.pth", weights_only=False) for out in (uninterrupted, resumed)]
    tensors = [_tensors(f) for f in final]
    assert tensors[0].keys() == tensors[1].keys()
    assert sum(k.startswith("/model/") for k in tensors[0]) > 50
    assert any(k.startswith("/trainer/optimizer/state/") for k in tensors[0])
    different = [k for k in tensors[0] if not torch.equal(tensors[0][k], tensors[1][k])]
    assert not different, different


def _run(*argv):
    return main(default_argument_parser().parse_args(["--config-file", CONFIG, *argv]))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_one_process_resumed_run_is_bit_identical(tiny_fashiondet, tmp_path, workers):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(*_argv(a, workers))
    with signal_at_iteration(STOP_AT), pytest.raises(TrainingInterrupted):
        _run(*_argv(b, workers))
    assert (b / "last_checkpoint").read_text() == f"model_{STOP_AT:07d}.pth"
    assert _run("--resume", *_argv(b, workers)).iter == MAX_ITER
    _assert_bit_identical(a, b)


@pytest.mark.slow
def test_two_process_resumed_run_is_bit_identical(tiny_fashiondet, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # in each of 2 processes (one image each: total batch 2): a, b stopped, b resumed
    launch(train_stopped_and_resumed, 2, dist_url="auto", backend="gloo",
           args=(CONFIG, _argv(a, 0), _argv(b, 0), STOP_AT))
    assert (b / f"model_{STOP_AT:07d}.pth").is_file()  # the checkpoint of the stop
    _assert_bit_identical(a, b)

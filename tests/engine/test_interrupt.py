"""Interrupted runs: a signal stops training cleanly (checkpoint, a line saying how to resume), the
launcher's workers never outlive it, and a resumed run continues the data stream."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES, alive, children
from detectron2.engine import SimpleTrainer

from dicod_d2.engine.checkpoint import _is_complete
from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.interrupt import TrainingInterrupted
from dicod_d2.engine.train_loop import main

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")


def _train(out, max_iter, *argv, interrupt_at=None, signum=signal.SIGINT):
    """Train in this process; return (image file names of each batch, trainer or the interruption).

    With ``interrupt_at``, this process sends itself ``signum`` while batch ``interrupt_at`` is drawn."""
    seen = []
    original = SimpleTrainer.before_train

    def record(self):
        original(self)
        batches = self._data_loader_iter

        def recorded():
            for batch in batches:
                if self.iter == interrupt_at:
                    os.kill(os.getpid(), signum)
                seen.append([d["file_name"] for d in batch])
                yield batch

        self._data_loader_iter = recorded()

    SimpleTrainer.before_train = record
    try:
        result = main(default_argument_parser().parse_args(
            ["--config-file", CONFIG, *argv, *TINY_OVERRIDES, f"train.output_dir={out}",
             f"train.max_iter={max_iter}", "train.eval_period=0", "train.checkpointer.period=100",
             "dataloader.train.num_workers=2"]))
    except TrainingInterrupted as e:
        result = e
    finally:
        SimpleTrainer.before_train = original
    return seen, result


@pytest.mark.slow
def test_signal_stops_cleanly_and_resume_continues_the_data_stream(tiny_fashiondet, tmp_path):
    # the tiny split has fewer images than 6 batches of 2: the stream wraps into a second epoch
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    uninterrupted, _ = _train(tmp_path / "a", 6)
    assert len(uninterrupted) == 6

    first, stop = _train(tmp_path / "b", 6, interrupt_at=2)
    assert isinstance(stop, TrainingInterrupted) and stop.exit_code == 128 + signal.SIGINT
    assert "at iteration 2" in str(stop) and f"resume with --resume (output dir {tmp_path / 'b'})" in str(stop)
    assert (tmp_path / "b" / "last_checkpoint").read_text() == "model_0000002.pth"
    assert torch.load(tmp_path / "b" / "model_0000002.pth", weights_only=False)["iteration"] == 2
    assert not list((tmp_path / "b").glob(".*.tmp"))
    # the handlers the process had before (SIG_IGN under a non-interactive shell's `&`) are restored
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers

    rest, trainer = _train(tmp_path / "b", 6, "--resume")
    assert trainer.iter == 6
    assert first + rest == uninterrupted


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_two_process_launcher_signal_leaves_no_worker_and_no_partial_file(tiny_fashiondet, tmp_path,
                                                                          signum):
    out = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, str(REPO / "tools/lazyconfig_train_net.py"), "--config-file", CONFIG,
         "--num-gpus", "2", *TINY_OVERRIDES, f"train.output_dir={out}", "train.max_iter=100000",
         "train.eval_period=0", "train.checkpointer.period=100000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "metrics.json").exists() or not (out / "metrics.json").read_text().strip():
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()
            time.sleep(0.5)
        workers = children(launcher.pid)
        assert len([p for p in workers if alive(p)]) >= 2
        launcher.send_signal(signum)
        deadline = time.monotonic() + 120
        while any(alive(p) for p in workers):
            assert time.monotonic() < deadline, "a worker outlived its launcher"
            time.sleep(0.5)
        output = launcher.communicate(timeout=60)[0]
    finally:
        if launcher.poll() is None:
            launcher.kill()
    if signum == signal.SIGTERM:
        assert launcher.returncode == 128 + signal.SIGTERM, output
    # the workers stopped cleanly (SIGTERM forwarded, or SIGINT from the launcher's death)
    log = (out / "log.txt").read_text()
    assert "resume with --resume" in log, output
    last = out / (out / "last_checkpoint").read_text()
    iteration = torch.load(last, weights_only=False)["iteration"]
    assert _is_complete(last) and last.name == f"model_{iteration:07d}.pth"
    assert not list(out.glob(".*.tmp"))
    assert json.loads((out / "metrics.json").read_text().splitlines()[-1])["iteration"] <= iteration

"""Several CPU processes (gloo) train through the project's launcher and stay in sync."""
import sys
from pathlib import Path

import pytest
import torch

from dicod_d2.engine.launch import default_backend, launch

sys.path.insert(0, str(Path(__file__).parent))  # spawned children inherit sys.path
from _dist_worker import train_and_dump  # noqa: E402
from _helpers import REPO, TINY_OVERRIDES  # noqa: E402


def test_default_backend_without_cuda_is_gloo():
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    assert default_backend() == "gloo"


def test_nccl_without_cuda_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    with pytest.raises(RuntimeError, match="gloo"):
        launch(print, 2, backend="nccl")


@pytest.mark.slow
def test_two_gloo_processes_train_and_end_with_identical_weights(tiny_fashiondet, tmp_path):
    overrides = TINY_OVERRIDES + [
        "train.max_iter=3", "train.eval_period=0", "train.checkpointer.period=100",
        f"train.output_dir={tmp_path / 'run'}", "dataloader.train.total_batch_size=2",
    ]
    config = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")
    launch(train_and_dump, 2, dist_url="auto", args=(config, overrides, str(tmp_path)),
           backend="gloo")
    r0 = torch.load(tmp_path / "rank0.pth")
    r1 = torch.load(tmp_path / "rank1.pth")
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["iter"] == r1["iter"] == 3  # iterations 0, 1, 2 ran
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        if "num_batches_tracked" in k or "running_" in k:
            continue  # BN statistics are per process (broadcast_buffers=False)
        assert torch.equal(r0["state"][k], r1["state"][k]), k

"""tools/demo.py refuses bad options with one clear line, before any work starts."""
import subprocess
import sys

import pytest
from _helpers import REPO


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0", "0"], "--seeds has repeated values"),
        (["--parallel", "0"], "--parallel must be at least 1"),
        (["--student-iters", "-3"], "--student-iters must be a positive number"),
        (["--students", "yolo"], "unknown students ['yolo']; choose among"),
        (["--ablation-seeds", "0"], "--ablation-seeds needs --ablation"),
        (["--seeds", "0", "1", "--ablation", "--ablation-seeds", "2"], "--ablation-seeds [2] not among --seeds [0, 1]"),
    ],
)
def test_bad_options(args, message, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools/demo.py"), "--out", str(tmp_path / "o"), *args],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "o").exists()

"""Importing the library and detectron2's models prints no torch.jit.script deprecation warning."""
import subprocess
import sys

from _helpers import REPO


def test_no_jit_script_future_warning_at_import():
    code = "import dicod_d2.cli, detectron2.modeling, fvcore.nn"
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO, capture_output=True,
                          text=True, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit.script" not in proc.stderr, proc.stderr

"""Shared fixtures: a tiny FashionDet under a per-session data root, CPU-friendly torch settings."""
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for tests/_helpers.py
# the tools' own packages (tools/benchmarking), importable as the scripts in tools/ import them
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

# point the data root at a private folder before any test imports dicod_d2.data (which registers
# the FashionDet splits under it); the tiny split is generated on first use
DATA_ROOT = Path(tempfile.mkdtemp(prefix="dicod-d2-tests-"))
os.environ["DICOD_DATASETS"] = str(DATA_ROOT)
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

@pytest.fixture(scope="session")
def tiny_fashiondet() -> Path:
    """The tiny FashionDet preset under the session's data root; returns its folder."""
    from dicod_d2.data.fashiondet import generate_fashiondet

    folder = DATA_ROOT / "fashiondet_tiny"
    generate_fashiondet(folder, "tiny", seed=0)
    return folder

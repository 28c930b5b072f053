"""Constants and helpers shared by the tests (tests/ is on sys.path through conftest.py)."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: overrides that turn a FashionDet config into a seconds-long CPU run on the tiny split
TINY_OVERRIDES = [
    "dataloader.train.dataset.names=fashiondet_tiny_train",
    "dataloader.test.dataset.names=fashiondet_tiny_val",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "train.log_period=1",
]

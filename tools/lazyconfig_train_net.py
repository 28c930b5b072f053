#!/usr/bin/env python
"""Train or evaluate a detector from a LazyConfig file, on one or several processes.

    python tools/lazyconfig_train_net.py --config-file configs/fashiondet/faster_rcnn/baseline.py \
        [--num-gpus N] [--num-machines M --machine-rank R --dist-url tcp://HOST:PORT] \
        [--eval-only] [--resume] [key=value ...]

``--num-gpus N`` starts N processes: one per GPU with NCCL, or N CPU processes with gloo when CUDA
is not available. See dicod_d2/engine/train_loop.py for what the config must provide.
"""
import sys

from dicod_d2.cli import run_cli
from dicod_d2.engine.train_loop import main

if __name__ == "__main__":
    sys.exit(run_cli(main, __doc__))

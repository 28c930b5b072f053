"""Argument parsing, process setup and DDP wrapping shared by every training script."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from detectron2.engine import default_argument_parser as _d2_argument_parser
from detectron2.engine import default_setup as _d2_default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..utils.io import ensure_writable_dir
from .launch import DEFAULT_RENDEZVOUS_TIMEOUT


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """detectron2's parser; ``--num-gpus N`` starts N processes (GPUs, or CPU processes with gloo).

    ``--dist-url`` defaults to ``auto`` (a free local port, one machine only) instead of detectron2's
    fixed local URL, so that several machines without an explicit URL fail at once instead of waiting.
    """
    parser = _d2_argument_parser(epilog)
    for action in parser._actions:
        if action.dest == "num_gpus":
            action.help = "processes per machine: one per GPU, or CPU processes (gloo) without CUDA"
        if action.dest == "dist_url":
            action.default = "auto"
            action.help = ("tcp://HOST:PORT of machine 0, the same on every machine (required with "
                           "--num-machines > 1; default: a free local port)")
    parser.add_argument(
        "--rendezvous-timeout", type=float, default=DEFAULT_RENDEZVOUS_TIMEOUT.total_seconds(),
        metavar="SECONDS", help="how long the processes of several machines wait for each other at "
        "the start before failing (default: %(default)s)",
    )
    parser.add_argument(
        "--dist-backend", default=None, choices=("nccl", "gloo"),
        help="torch.distributed backend (default: nccl with CUDA, gloo without)",
    )
    return parser


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``; CUDA asked without CUDA fails."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={device} but CUDA is not available: use train.device=cpu")
    return device


def setup(cfg, args) -> None:
    """Resolve the device, check the output folder, then run detectron2's ``default_setup``.

    ``default_setup`` creates the output folder, sets up logging, logs the environment and the
    config, saves the config as ``config.yaml`` and seeds the RNGs with ``train.seed`` (+ rank);
    the ``dicod_d2`` logger then writes to the same log.
    """
    cfg.train.device = resolve_device(cfg.train.get("device", "auto"))
    if cfg.train.amp.enabled and cfg.train.device == "cpu":
        raise RuntimeError("train.amp.enabled=True needs CUDA (detectron2's AMPTrainer); set it to False")
    ensure_writable_dir(Path(cfg.train.output_dir))
    _d2_default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="dicod_d2")
    if cfg.train.device == "cpu" and comm.get_world_size() == 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def create_ddp_model(model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs):
    """Wrap ``model`` in DDP when several processes run; CPU models get ``device_ids=None`` (gloo)."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).is_cuda:
        kwargs.setdefault("device_ids", [comm.get_local_rank()])
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp

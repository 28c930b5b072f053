"""Argument parsing, process setup and DDP wrapping shared by every training script."""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import torch
from detectron2.engine import default_argument_parser as _d2_argument_parser
from detectron2.engine import default_setup as _d2_default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from omegaconf import OmegaConf
from torch.nn.parallel import DistributedDataParallel

from ..data.coco_json import check_registered
from ..errors import ConfigError
from ..utils.io import ensure_writable_dir
from ..utils.logger import setup_run_logging
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
    parser.add_argument(
        "--register-coco", nargs=3, action="append", default=[],
        metavar=("NAME", "JSON", "IMAGE_DIR"),
        help="register a COCO-format json and its image folder as dataset NAME (repeatable); "
        "then use NAME in the config, e.g. dataloader.train.dataset.names=NAME",
    )
    return parser


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``; CUDA asked without CUDA fails."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={device} but CUDA is not available: use train.device=cpu")
    return device


def config_dataset_names(cfg) -> list[str]:
    """The dataset names of ``cfg.dataloader.{train,test}.dataset.names`` (those that are set)."""
    names = []
    for split in ("train", "test"):
        value = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None)
        names += [value] if isinstance(value, str) else list(value or [])
    return names


def setup(cfg, args) -> None:
    """Check the device, datasets and output folder, then run detectron2's ``default_setup``
    and set up the ``dicod_d2`` logger.

    ``default_setup`` creates the output folder, sets up logging, logs the environment and the
    config, saves the config as ``config.yaml`` and seeds the RNGs with ``train.seed`` (+ rank);
    the ``dicod_d2`` logger then writes to the same log. The loggers keep one console and one
    file handler however many trainings the process runs (:func:`~dicod_d2.utils.logger.setup_run_logging`).
    """
    cfg.train.device = resolve_device(cfg.train.get("device", "auto"))
    if cfg.train.amp.enabled and cfg.train.device == "cpu":
        raise ConfigError("train.amp.enabled=True needs CUDA (detectron2's AMPTrainer); set it to False")
    check_registered(config_dataset_names(cfg))
    ensure_writable_dir(Path(cfg.train.output_dir), option="train.output_dir")

    def run_setup():
        _d2_default_setup(cfg, args)
        setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="dicod_d2")

    setup_run_logging(run_setup)
    if cfg.train.device == "cpu" and comm.get_world_size() == 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def create_ddp_model(model: torch.nn.Module, *, fp16_compression: bool = False, **kwargs):
    """Wrap ``model`` in DDP when several processes run; CPU models get ``device_ids=None`` (gloo)."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).is_cuda:
        kwargs.setdefault("device_ids", [comm.get_local_rank()])
    with warnings.catch_warnings():
        # torch deprecates broadcast_buffers; its replacement forward_sync_buffers would also sync the
        # buffers at init: the config's broadcast_buffers=False is kept, without the warning
        warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
        ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp

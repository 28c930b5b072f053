"""Launch one or several training processes, on GPUs (NCCL) or on CPUs (gloo).

detectron2 0.6's ``launch`` asserts CUDA as soon as more than one process is asked for. This launcher
keeps its signature and behaviour (``torch.multiprocessing.spawn``, ``dist_url`` with ``"auto"``,
detectron2's local process group for ``comm.get_local_rank()``) and picks the backend: NCCL with one
GPU per process when CUDA is available, gloo with CPU processes otherwise.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch", "default_backend"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
logger = logging.getLogger(__name__)


def default_backend() -> str:
    """``"nccl"`` when CUDA is usable, else ``"gloo"``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(
    main_func: Callable,
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    backend: str | None = None,
) -> None:
    """Run ``main_func(*args)`` in ``num_processes_per_machine × num_machines`` processes.

    Args:
        num_processes_per_machine: processes on this machine (one per GPU with NCCL; CPU processes
            with gloo).
        dist_url: ``tcp://host:port`` of machine 0 (``"auto"``: a free local port, one machine only).
        backend: ``"nccl"``, ``"gloo"`` or None (NCCL if CUDA is available, else gloo).
    """
    world_size = num_machines * num_processes_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    backend = (backend or default_backend()).lower()
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise RuntimeError("backend 'nccl' needs CUDA; use backend 'gloo' to train on CPUs")
        if num_processes_per_machine > torch.cuda.device_count():
            raise RuntimeError(
                f"{num_processes_per_machine} processes asked for but only "
                f"{torch.cuda.device_count()} GPUs are visible: lower --num-gpus"
            )
    if dist_url in (None, "auto"):
        if num_machines > 1:
            raise ValueError("several machines need an explicit --dist-url tcp://HOST:PORT of machine 0")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// is not a reliable init_method across machines; prefer tcp://")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url, args,
              timeout, backend),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank: int,
    main_func: Callable,
    world_size: int,
    num_processes_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: timedelta,
    backend: str,
) -> None:
    global_rank = machine_rank * num_processes_per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:
        # share the machine's cores between the CPU processes instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes_per_machine))
    try:
        dist.init_process_group(
            backend=backend, init_method=dist_url, world_size=world_size, rank=global_rank,
            timeout=timeout,
        )
    except Exception:
        logger.error("process group URL: %s", dist_url)
        raise
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_processes_per_machine):
        ranks = list(range(i * num_processes_per_machine, (i + 1) * num_processes_per_machine))
        group = dist.new_group(ranks)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        main_func(*args)
    finally:
        comm.synchronize()
        dist.destroy_process_group()

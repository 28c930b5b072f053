"""Identical BatchNorm statistics on every process of a multi-process run.

DDP all-reduces the gradients, so the parameters stay identical, but each process updates its
BatchNorm running statistics from its own images (the config keeps DDP's ``broadcast_buffers=False``)
and a checkpoint would keep rank 0's. :class:`BroadcastBuffers` copies rank 0's buffers to every
process after each iteration (one broadcast per buffer dtype), before checkpoints and evaluation.
Training itself is unchanged: BatchNorm normalises with batch statistics in training, and rank 0's
buffers are the ones checkpoints held before; a single process never broadcasts.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["BroadcastBuffers", "broadcast_buffers"]


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite every buffer of ``module`` with process ``src``'s (a no-op in a single process)."""
    if comm.get_world_size() == 1:
        return
    by_dtype = defaultdict(list)
    for buf in module.buffers():
        by_dtype[(buf.dtype, buf.device)].append(buf)
    for buffers in by_dtype.values():
        flat = torch.cat([b.reshape(-1) for b in buffers])
        dist.broadcast(flat, src)
        for b, values in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
            b.copy_(values.view_as(b))


class BroadcastBuffers(HookBase):
    """After each iteration, give every process rank 0's buffers (register it before checkpoints)."""

    def after_step(self):
        model = self.trainer.model
        broadcast_buffers(model.module if hasattr(model, "module") else model)

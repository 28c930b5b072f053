"""SGD that clips the global gradient norm before each step (LazyConfig-friendly)."""
from __future__ import annotations

import torch

from ..errors import ConfigError


class SGDClipGradNorm(torch.optim.SGD):
    """``torch.optim.SGD`` whose ``step`` first rescales all gradients so that their global L2 norm
    is at most ``max_grad_norm`` (``torch.nn.utils.clip_grad_norm_``).

    It keeps small detectors trained from scratch with BatchNorm at a high learning rate from
    diverging in their first iterations; a step whose norm is below the bound is plain SGD.
    Under DDP the gradients are already averaged over processes when ``step`` runs, so every
    process clips identically.
    """

    def __init__(self, params, *, max_grad_norm: float, **sgd_kwargs):
        if not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be > 0, got {max_grad_norm}.")
        super().__init__(params, **sgd_kwargs)
        self.max_grad_norm = float(max_grad_norm)

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(grads, self.max_grad_norm)
        return super().step(closure)

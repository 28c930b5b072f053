"""Localization distillation (KD_loc, the paper's Section 3): pooled L1 between predicted- and gt-box crops.

For K positives, a layer with C channels pooled to h × h contributes
``Σ_k ‖AP_h(F(O^p_k)) − AP_h(F(O^gt_k))‖₁ / (C·h²)``, i.e. the SUM over the positives of each one's mean
absolute difference of the pooled maps; the caller divides it once (by K for the paper's written
mean, or by the student's loss normaliser, see :class:`~dicod_d2.modeling.DICODDistiller`). The
ground-truth branch is detached. K = 0 gives a zero connected to the graph.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = ["default_loc_pools", "loc_pixel_loss", "loc_feature_loss"]


def default_loc_pools(num_layers: int) -> tuple[int, ...]:
    """Pool sizes of the layer list entries: the i-th entry is pooled to ``4·2^i`` (pixels 4, stem 8)."""
    return tuple(4 * 2**i for i in range(num_layers))


def _pooled_l1(pred: Tensor, gt: Tensor, pool: int, name: str) -> Tensor:
    if pred.dim() != 4 or pred.shape[:2] != gt.shape[:2]:
        raise ValueError(
            f"'{name}': predicted and ground-truth maps must be [K, C, h, w] with the same K and C, "
            f"got {tuple(pred.shape)} and {tuple(gt.shape)}."
        )
    if int(pool) < 1:
        raise ConfigError(
            f"'{name}': pool size must be a positive integer, got {pool}: give one positive size per "
            "loc_layers entry in the distiller's loc_pools (model.distiller.loc_pools)."
        )
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    diff = F.adaptive_avg_pool2d(pred, pool) - F.adaptive_avg_pool2d(gt.detach(), pool)
    return diff.abs().flatten(1).mean(dim=1).sum()


def loc_pixel_loss(pred_crops: Tensor, gt_crops: Tensor, pool: int = 4) -> Tensor:
    """L_loc_pix on crops [K, 3, s, s] (predicted, ground truth): ``Σ_k ‖AP_4(·)−AP_4(·)‖₁/(3·4·4)``."""
    return _pooled_l1(pred_crops, gt_crops, pool, "pixels")


def loc_feature_loss(
    pred_feats: Mapping[str, Tensor],
    gt_feats: Mapping[str, Tensor],
    layers: Sequence[str],
    pools: Sequence[int],
) -> Tensor:
    """Mean over ``layers`` of the pooled L1 term (each a sum over the K positives); ``pools[i]`` is
    the pool size of ``layers[i]``.

    Args:
        pred_feats / gt_feats: layer name -> [K, C_l, h_l, w_l] teacher feature maps.
        layers: names to use (non-empty).
        pools: one pool size per layer (see :func:`default_loc_pools`).
    Returns:
        Scalar, the sum over the K positives.
    """
    if len(layers) == 0 or len(layers) != len(pools):
        raise ConfigError(
            f"need one pool size per layer and at least one layer, got layers {list(layers)} "
            f"and pools {list(pools)}."
        )
    missing = [n for n in layers if n not in pred_feats or n not in gt_feats]
    if missing:
        raise KeyError(
            f"feature maps {missing} are missing (predicted has {sorted(pred_feats)}, "
            f"ground truth has {sorted(gt_feats)})."
        )
    terms = [_pooled_l1(pred_feats[n], gt_feats[n], p, n) for n, p in zip(layers, pools, strict=True)]
    return torch.stack(terms).mean()

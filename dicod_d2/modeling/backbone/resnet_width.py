"""Width-reduced ResNets (QR50 = ResNet50 with every width ÷ 4) from detectron2's ResNet blocks.

One function builds every depth (18, 34, 50, 101, 152) at any width divisor: the stem, bottleneck and
output channels of detectron2's standard ResNet are all divided by ``width_divisor``. QR50 is
``depth=50, width_divisor=4`` (stem 16, stage outputs 64/128/256/512, bottlenecks 16/32/64/128;
66.33% ImageNet top-1 in the DICOD paper). A half-width ResNet-18 (``depth=18, width_divisor=2``)
is a fast CPU student.

Outputs follow detectron2's ResNet: ``"stem"`` (stride 4) and ``"res2"``..``"res5"`` (strides 4, 8,
16, 32), each a tensor (N, C, H/stride, W/stride). Blocks put the stride in the 3×3 conv
(``stride_in_1x1=False``) as torchvision does, so torchvision-format ImageNet weights load
(:func:`dicod_d2.modeling.backbone.weights.load_torchvision_weights`).
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Mapping, Sequence

import torch
from detectron2.modeling.backbone import FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet
from torch import nn

from ...errors import ConfigError
from .weights import load_torchvision_weights

__all__ = [
    "build_resnet_width_backbone",
    "build_resnet_width_fpn_backbone",
    "build_fpn",
    "check_norm",
]

logger = logging.getLogger(__name__)

NormSpec = str | Callable[[int], nn.Module]
WeightsSpec = str | os.PathLike | Mapping[str, torch.Tensor] | None

_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}
_NORMS = ("BN", "SyncBN", "FrozenBN", "GN", "nnSyncBN", "naiveSyncBN", "naiveSyncBN_N")
_STAGES = ("res2", "res3", "res4", "res5")
_GN_GROUPS = 32  # detectron2's get_norm("GN") is nn.GroupNorm(32, C)


def check_norm(norm: NormSpec, channels: Iterable[int], network: str) -> None:
    """Raise a clear ValueError if ``norm`` cannot normalise every channel count of ``network``.

    ``norm`` is a detectron2 :func:`get_norm` name or a callable ``C -> nn.Module``; an empty norm is
    refused (these backbones have bias-free convs). "GN" needs every count divisible by 32.
    """
    if callable(norm):
        return
    if norm not in _NORMS:
        raise ConfigError(
            f"{network}: unknown norm {norm!r} (model.backbone.norm); use one of {_NORMS} (detectron2's get_norm names) "
            "or a callable that returns a normalisation module for a channel count."
        )
    bad = sorted({c for c in channels if c % _GN_GROUPS}) if norm == "GN" else []
    if bad:
        raise ConfigError(
            f"{network}: norm 'GN' (model.backbone.norm) is nn.GroupNorm({_GN_GROUPS}, C) and needs channel counts "
            f"divisible by {_GN_GROUPS}, but this network has {bad}. Use norm='BN'/'SyncBN', or "
            "pass a callable such as `lambda c: nn.GroupNorm(8, c)`."
        )


def build_fpn(
    bottom_up: Backbone,
    *,
    in_features: Sequence[str],
    out_channels: int,
    top_block: nn.Module | None,
) -> FPN:
    """detectron2 FPN over ``bottom_up``: outputs p<k> for each input res<k> plus the top block's.

    ``top_block=None`` means ``LastLevelMaxPool()`` (adds p6 = max-pool of p5, stride 64), the Faster
    R-CNN choice; pass ``LastLevelP6P7(in_channels=out_channels, out_channels=out_channels,
    in_feature="p5")`` with ``in_features=("res3", "res4", "res5")`` for RetinaNet (p3..p7).
    """
    return FPN(
        bottom_up=bottom_up,
        in_features=list(in_features),
        out_channels=out_channels,
        top_block=LastLevelMaxPool() if top_block is None else top_block,
    )


def _widths(depth: int, width_divisor: int) -> tuple[int, list[int], list[int]]:
    """(stem channels, bottleneck channels per stage, output channels per stage) for a divisor."""
    if depth not in _BLOCKS_PER_STAGE:
        raise ConfigError(
            f"model.backbone.depth={depth}: ResNet depth must be one of {sorted(_BLOCKS_PER_STAGE)}."
        )
    if not isinstance(width_divisor, int) or width_divisor < 1 or 64 % width_divisor:
        raise ConfigError(
            f"model.backbone.width_divisor={width_divisor!r}: must be a positive integer dividing 64 "
            "(1, 2, 4, 8, ...), the stem's channels at full width."
        )
    stem = 64 // width_divisor
    bottleneck = [stem * 2**i for i in range(4)]
    out = bottleneck if depth < 50 else [4 * b for b in bottleneck]
    return stem, bottleneck, out


def build_resnet_width_backbone(
    *,
    depth: int = 50,
    width_divisor: int = 4,
    norm: NormSpec = "BN",
    freeze_at: int = 0,
    out_features: Sequence[str] = _STAGES,
    weights: WeightsSpec = None,
    in_channels: int = 3,
) -> ResNet:
    """A detectron2 :class:`ResNet` with every width divided by ``width_divisor``.

    Args:
        depth: 18 or 34 (BasicBlock) or 50, 101, 152 (BottleneckBlock).
        width_divisor: 1 = standard ResNet, 4 = QR50 for depth 50, 2 = half width.
        norm: detectron2 norm name ("BN", "SyncBN", "FrozenBN", "GN") or callable. Use "BN" (or
            "SyncBN") when training from scratch: FrozenBN on random weights diverges.
        freeze_at: 0 = nothing frozen; 1 = the stem; k ≥ 2 = the stem and res2..res<k> (weights
            ``requires_grad=False`` and their BatchNorms converted to FrozenBatchNorm2d).
        out_features: any of "stem", "res2".."res5"; stages after the last one are not built.
        weights: optional torchvision-format ImageNet state dict (path or mapping), loaded before
            freezing; see :func:`load_torchvision_weights`.
        in_channels: input image channels.

    Returns:
        ResNet whose ``forward(x)`` maps (N, in_channels, H, W) to {name: (N, C, H/s, W/s)}.
    """
    stem_channels, bottleneck, out = _widths(depth, width_divisor)
    check_norm(norm, [stem_channels, *bottleneck, *out], f"ResNet-{depth}/{width_divisor}")
    stem = BasicStem(in_channels=in_channels, out_channels=stem_channels, norm=norm)
    stages = []
    stage_in = stem_channels
    for i, (n, b, o) in enumerate(zip(_BLOCKS_PER_STAGE[depth], bottleneck, out, strict=True)):
        kwargs = dict(num_blocks=n, in_channels=stage_in, out_channels=o, norm=norm)
        kwargs["stride_per_block"] = [1 if i == 0 else 2] + [1] * (n - 1)
        if depth < 50:
            stages.append(ResNet.make_stage(BasicBlock, **kwargs))
        else:
            stages.append(
                ResNet.make_stage(
                    BottleneckBlock, bottleneck_channels=b, stride_in_1x1=False, **kwargs
                )
            )
        stage_in = o
    model = ResNet(stem, stages, out_features=list(out_features), freeze_at=0)
    if weights is not None:
        logger.info("%s", load_torchvision_weights(model, weights))
    return model.freeze(freeze_at)


def build_resnet_width_fpn_backbone(
    *,
    depth: int = 50,
    width_divisor: int = 4,
    out_channels: int = 256,
    norm: NormSpec = "BN",
    freeze_at: int = 0,
    weights: WeightsSpec = None,
    in_features: Sequence[str] = _STAGES,
    top_block: nn.Module | None = None,
) -> FPN:
    """FPN over :func:`build_resnet_width_backbone` (QR50-FPN by default).

    With the defaults the outputs are p2..p6 (strides 4..64, ``out_channels`` each), as in
    detectron2's Faster R-CNN R50-FPN; see :func:`build_fpn` for RetinaNet's p3..p7.
    """
    bottom_up = build_resnet_width_backbone(
        depth=depth,
        width_divisor=width_divisor,
        norm=norm,
        freeze_at=freeze_at,
        out_features=in_features,
        weights=weights,
    )
    return build_fpn(
        bottom_up, in_features=in_features, out_channels=out_channels, top_block=top_block
    )

"""MobileNetV2 as a detectron2 bottom-up backbone (+ FPN builder) from torchvision's blocks.

torchvision's ``MobileNetV2(...).features`` (19 modules; built with ``weights=None``, never
downloaded) is split into five parts named like detectron2's ResNet so configs and ``freeze_at``
read the same:

=========  ======================  ======  =====================
name       torchvision features    stride  channels (width 1.0)
=========  ======================  ======  =====================
``stem``   0..1                    2       16
``res2``   2..3                    4       24
``res3``   4..6                    8       32
``res4``   7..13                   16      96
``res5``   14..18 (incl. 1×1 conv) 32      1280
=========  ======================  ======  =====================

Each output is a tensor (N, C, H/stride, W/stride). Channel counts scale with ``width_mult``
(rounded to multiples of 8, the last conv never below 1280) and are read from the built modules.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from detectron2.layers import FrozenBatchNorm2d, get_norm
from detectron2.modeling.backbone import FPN, Backbone
from torch import nn
from torchvision.models import mobilenetv2 as tv_mobilenetv2

from ...errors import ConfigError
from .resnet_width import NormSpec, WeightsSpec, build_fpn, check_norm
from .weights import load_torchvision_weights

__all__ = ["MobileNetV2", "build_mobilenetv2_backbone", "build_mobilenetv2_fpn_backbone"]

logger = logging.getLogger(__name__)

# (name, first torchvision feature index, stride of its output); a part ends where the next begins.
_PARTS = (("stem", 0, 2), ("res2", 2, 4), ("res3", 4, 8), ("res4", 7, 16), ("res5", 14, 32))
_NUM_FEATURES = 19
_STAGES = ("res2", "res3", "res4", "res5")


class MobileNetV2(Backbone):
    """MobileNetV2 feature extractor with outputs ``stem``, ``res2``..``res5`` (see module doc)."""

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        norm: NormSpec = "BN",
        out_features: Sequence[str] = _STAGES,
        freeze_at: int = 0,
    ):
        """
        Args:
            width_mult: torchvision's channel multiplier (1.0 = the standard network).
            norm: detectron2 norm name ("BN", "SyncBN", "FrozenBN", "GN") or callable ``C -> module``.
                Use "BN"/"SyncBN" when training from scratch (FrozenBN on random weights diverges).
            out_features: subset of "stem", "res2".."res5"; parts after the last one are not built.
            freeze_at: 0 = nothing; 1 = the stem; k ≥ 2 = the stem and res2..res<k>
                (``requires_grad=False`` and BatchNorm -> FrozenBatchNorm2d), as detectron2's ResNet.
        """
        super().__init__()
        names = [name for name, _, _ in _PARTS]
        if not out_features or any(f not in names for f in out_features):
            raise ConfigError(
                f"MobileNetV2 out_features={list(out_features)} (model.backbone.in_features with an "
                f"FPN): must be a non-empty subset of {names}."
            )
        features = tv_mobilenetv2.MobileNetV2(
            width_mult=width_mult, norm_layer=lambda c: _make_norm(norm, c)
        ).features
        assert len(features) == _NUM_FEATURES, "unexpected torchvision MobileNetV2 layout"
        last = max(names.index(f) for f in out_features)
        bounds = [start for _, start, _ in _PARTS[1:]] + [_NUM_FEATURES]
        self._part_of_feature: dict[int, tuple[str, int]] = {}
        self._out_feature_strides, self._out_feature_channels = {}, {}
        for (name, start, stride), end in zip(_PARTS[: last + 1], bounds, strict=False):
            self.add_module(name, nn.Sequential(*features[start:end]))
            for i in range(start, end):
                self._part_of_feature[i] = (name, i - start)
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = features[end - 1].out_channels
        self._out_features = list(out_features)
        self.part_names = tuple(names[: last + 1])
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {name: (N, C_name, ceil(H/stride), ceil(W/stride))} for ``out_features``."""
        if x.dim() != 4:
            raise ValueError(
                f"MobileNetV2 takes an (N, C, H, W) tensor, got shape {tuple(x.shape)}."
            )
        outputs = {}
        for name in self.part_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> "MobileNetV2":
        """Freeze the first ``freeze_at`` parts (stem, res2, ...): no gradient, FrozenBatchNorm2d."""
        for name in self.part_names[:freeze_at]:
            part = getattr(self, name)
            for p in part.parameters():
                p.requires_grad = False
            FrozenBatchNorm2d.convert_frozen_batchnorm(part)
        return self

    def name_from_torchvision(self, key: str) -> str:
        """torchvision ``features.<i>.<rest>`` -> ``<part>.<i - start>.<rest>``; others unchanged."""
        head, _, rest = key.partition(".")
        index, _, rest = rest.partition(".")
        if head != "features" or not index.isdigit() or int(index) not in self._part_of_feature:
            return key
        name, j = self._part_of_feature[int(index)]
        return f"{name}.{j}.{rest}"


def _make_norm(norm: NormSpec, channels: int) -> nn.Module:
    check_norm(norm, [channels], "MobileNetV2")
    return get_norm(norm, channels)


def build_mobilenetv2_backbone(
    *,
    width_mult: float = 1.0,
    norm: NormSpec = "BN",
    freeze_at: int = 0,
    out_features: Sequence[str] = _STAGES,
    weights: WeightsSpec = None,
) -> MobileNetV2:
    """:class:`MobileNetV2`, optionally loading torchvision ImageNet ``weights`` before freezing."""
    model = MobileNetV2(width_mult=width_mult, norm=norm, out_features=out_features)
    if weights is not None:
        logger.info("%s", load_torchvision_weights(model, weights))
    return model.freeze(freeze_at)


def build_mobilenetv2_fpn_backbone(
    *,
    out_channels: int = 256,
    norm: NormSpec = "BN",
    freeze_at: int = 0,
    weights: WeightsSpec = None,
    width_mult: float = 1.0,
    in_features: Sequence[str] = _STAGES,
    top_block: nn.Module | None = None,
) -> FPN:
    """MobileNetV2-FPN: by default p2..p6 (strides 4..64, ``out_channels`` each) for Faster R-CNN.

    See :func:`dicod_d2.modeling.backbone.resnet_width.build_fpn` for RetinaNet's p3..p7.
    """
    bottom_up = build_mobilenetv2_backbone(
        width_mult=width_mult,
        norm=norm,
        freeze_at=freeze_at,
        out_features=in_features,
        weights=weights,
    )
    return build_fpn(
        bottom_up, in_features=in_features, out_channels=out_channels, top_block=top_block
    )

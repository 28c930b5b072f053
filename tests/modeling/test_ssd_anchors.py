"""SSD default boxes: sizes, per-level counts and totals for SSD300 (8732) and SSD512 (24564)."""
import math

import pytest
import torch

from dicod_d2.modeling.ssd_anchors import SSDAnchorGenerator, ssd_anchor_sizes

SSD300 = dict(
    input_size=300,
    strides=[8, 16, 32, 64, 100, 300],
    aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
    ratio_range=(0.15, 0.9),
    first_level_ratios=(0.07, 0.15),
)
SSD512 = dict(
    input_size=512,
    strides=[8, 16, 32, 64, 128, 256, 512],
    aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
    ratio_range=(0.1, 0.9),
    first_level_ratios=(0.04, 0.1),
)


def test_sizes_match_the_ssd_recipe():
    assert ssd_anchor_sizes(300, (0.15, 0.9), (0.07, 0.15), 6) == (
        [21, 45, 99, 153, 207, 261],
        [45, 99, 153, 207, 261, 315],
    )
    assert ssd_anchor_sizes(512, (0.1, 0.9), (0.04, 0.1), 7) == (
        [20, 51, 133, 215, 296, 378, 460],
        [51, 133, 215, 296, 378, 460, 542],
    )


@pytest.mark.parametrize(
    "spec, sides, per_level, total",
    [
        (SSD300, [38, 19, 10, 5, 3, 1], [4, 6, 6, 6, 4, 4], 8732),
        (SSD512, [64, 32, 16, 8, 4, 2, 1], [4, 6, 6, 6, 6, 4, 4], 24564),
    ],
)
def test_counts_per_level_and_total(spec, sides, per_level, total):
    gen = SSDAnchorGenerator(**spec)
    assert gen.num_anchors == per_level
    anchors = gen([torch.zeros(1, 1, s, s) for s in sides])
    counts = [len(a) for a in anchors]
    assert counts == [s * s * a for s, a in zip(sides, per_level, strict=True)]
    assert sum(counts) == total


def test_cell_anchors_geometry():
    gen = SSDAnchorGenerator(**SSD300)
    boxes = gen([torch.zeros(1, 1, s, s) for s in [38, 19, 10, 5, 3, 1]])
    # level 0: first location centred at (4, 4); min square 21, sqrt(21*45) square, 2:1 and 1:2 boxes
    first = boxes[0].tensor[:4]
    wh = first[:, 2:] - first[:, :2]
    torch.testing.assert_close((first[:, :2] + first[:, 2:]) / 2, torch.full((4, 2), 4.0))
    r2 = math.sqrt(2)
    expected = torch.tensor([[21, 21], [math.sqrt(21 * 45)] * 2, [21 * r2, 21 / r2], [21 / r2, 21 * r2]])
    torch.testing.assert_close(wh, expected.float())
    # last level: one location at the image centre
    torch.testing.assert_close((boxes[5].tensor[:, :2] + boxes[5].tensor[:, 2:]) / 2, torch.full((4, 2), 150.0))
    # level 4 (3x3, stride 100): centres 50, 150, 250
    centres = ((boxes[4].tensor[:, 0] + boxes[4].tensor[:, 2]) / 2).round(decimals=3).unique()
    torch.testing.assert_close(centres, torch.tensor([50.0, 150.0, 250.0]))


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="one list per level"):
        SSDAnchorGenerator(**{**SSD300, "aspect_ratios": [[2]] * 5})
    with pytest.raises(ValueError, match="0 < lo < hi"):
        ssd_anchor_sizes(300, (0.9, 0.15), (0.07, 0.15), 6)

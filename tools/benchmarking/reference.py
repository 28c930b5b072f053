"""The authors' crop (one image copy per box), the reference the project's crops are measured
against, and random boxes to crop."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dicod_d2.layers.box_crops import prepare_boxes


def reference_crop_replicate(images: Tensor, boxes: Tensor, batch_index: Tensor, size: int) -> Tensor:
    """The authors' crop: replicate the image once per box ([N, C, H, W]), then one ``grid_sample``.

    Args:
        images: [B, C, H, W] float; boxes: [N, 4] XYXY absolute pixels; batch_index: [N] long.
        size: output side s (px).
    Returns:
        [N, C, s, s], differentiable w.r.t. ``boxes``; samples the same points as the project's
        crops (box preparation of :func:`prepare_boxes`, affine grid with ``align_corners=False``).
        Memory: the N×C×H×W copy.
    """
    _, channels, height, width = images.shape
    b = prepare_boxes(boxes.to(images.dtype), height, width)
    x1, y1, x2, y2 = b.unbind(dim=1)
    zeros = torch.zeros_like(x1)
    theta = torch.stack(
        [
            torch.stack([(x2 - x1) / width, zeros, (x1 + x2) / width - 1.0], dim=1),
            torch.stack([zeros, (y2 - y1) / height, (y1 + y2) / height - 1.0], dim=1),
        ],
        dim=1,
    )  # [N, 2, 3]: output [-1, 1] -> input normalised coordinates
    grid = F.affine_grid(theta, [len(b), channels, size, size], align_corners=False)
    replicated = images[batch_index]  # [N, C, H, W] copy, one per box
    return F.grid_sample(replicated, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_boxes(
    num: int, num_images: int, height: int, width: int, generator: torch.Generator, grouped: bool = True
) -> tuple[Tensor, Tensor]:
    """``num`` random boxes [N, 4] (XYXY px, sides 8 px … half the image) spread evenly over
    ``num_images`` images, and their image index [N] long: grouped by image (non-decreasing, the
    order in which the students pass their positives) or, with ``grouped=False``, interleaved
    (0, 1, …, 0, 1, …)."""
    side = torch.rand(num, 2, generator=generator) * 0.5 * torch.tensor([width, height]) + 8
    side = torch.minimum(side, torch.tensor([width, height], dtype=side.dtype))
    corner = torch.rand(num, 2, generator=generator) * (torch.tensor([width, height]) - side)
    boxes = torch.cat([corner, corner + side], dim=1)
    index = torch.arange(num) * num_images // max(num, 1) if grouped else torch.arange(num) % num_images
    return boxes, index

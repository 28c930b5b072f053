"""Crop boxes out of a batch of images, resampled to ``size × size``.

Both crops sample the same points. Box coordinates are continuous pixel coordinates (XYXY,
absolute pixels, detectron2's convention: pixel ``i`` covers ``[i, i + 1)``, its centre is
``i + 0.5``). Output pixel ``j`` of a box ``[x1, x2]`` samples at ``x1 + (j + 0.5) · (x2 − x1) / size``
with bilinear interpolation; coordinates beyond the outermost pixel centres take the border value.

Box preparation (shared by both crops, see :func:`prepare_boxes`):
  0. a non-finite coordinate (a diverging detector's NaN or ±inf prediction) is replaced by a finite one
     (NaN → 0, ±inf → the dtype's largest finite value) without a host sync, so the sampler never sees a
     NaN grid (the CPU backward of ``grid_sample`` crashes on one); its gradient is zero, and the run's
     non-finite loss is left for the trainer's finite-loss check to report;
  1. coordinates are clipped to the image tensor, ``[0, W] × [0, H]`` (with a padded batch this is
     the padded size: the padding is sampled like image content);
  2. a width or height below ``MIN_BOX_SIZE`` (1 px) — a degenerate, inverted or fully outside box —
     is replaced by ``MIN_BOX_SIZE`` about the box centre, so the crop is a finite 1-px patch.
Gradients w.r.t. a clipped coordinate, or w.r.t. the size of a box that was enlarged to the minimum
size, are zero (the box centre still gets a gradient); they are never NaN.

``crop_boxes_roi_align`` (no gradient; the KD_cls crops) is one torchvision ``roi_align`` call with
``aligned=True, sampling_ratio=1``: one bilinear sample per output bin, at the bin centre, which are the
points of an affine-grid crop with ``align_corners=False``.

``crop_boxes_differentiable`` (gradient w.r.t. boxes and images; the KD_loc crops) lays the batch out
as one mosaic image [1, C, B·H, W] (the images top to bottom) and calls ``F.grid_sample`` ONCE on the
grids of all boxes concatenated along the height axis (grid ``[1, N·s, s, 2]``), each box's rows
offset to its image and clamped to it so that no sample reaches a neighbouring image. The number of
operators is the same for any number of images and boxes, and nothing is read back to the host. The
image is never copied per box: memory is O(N · size²) for the grids and crops, plus one copy of the
batch (also for the gradient w.r.t. the images).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from ..errors import ConfigError

__all__ = ["MIN_BOX_SIZE", "prepare_boxes", "crop_boxes_roi_align", "crop_boxes_differentiable"]

MIN_BOX_SIZE = 1.0
"""Smallest box width / height (pixels) that is sampled; smaller boxes are enlarged about their centre."""


def _check_inputs(images: Tensor, boxes: Tensor, batch_index: Tensor, size: int, check_index: bool) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor [B, C, H, W], got {tuple(images.shape)} {images.dtype}; "
            "convert uint8 images with .float() first."
        )
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] (XYXY, absolute pixels), got {tuple(boxes.shape)}.")
    if batch_index.dim() != 1 or batch_index.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"batch_index must be [N] with N = {boxes.shape[0]} (one image index per box), "
            f"got {tuple(batch_index.shape)}."
        )
    if batch_index.dtype != torch.long:
        raise ValueError(f"batch_index must be a long tensor, got {batch_index.dtype}.")
    # the range check reads the values: only where that costs no device synchronisation (CPU), and
    # only when the caller asks for it
    checked = check_index and batch_index.device.type == "cpu" and batch_index.numel() > 0
    if checked and ((batch_index < 0) | (batch_index >= images.shape[0])).any():
        raise ValueError(
            f"batch_index values must lie in [0, {images.shape[0] - 1}] (the batch has "
            f"{images.shape[0]} images), got [{int(batch_index.min())}, {int(batch_index.max())}]."
        )
    if int(size) < 1:
        raise ConfigError(
            f"crop size must be a positive integer, got {size}: set the crop size (e.g. "
            "model.distiller.crop_size; None takes the teacher's input size) to a positive value."
        )


def prepare_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Make ``boxes`` [N, 4] (XYXY px) finite, clip them to ``[0, width] × [0, height]`` and enforce
    ``MIN_BOX_SIZE``.

    Returns [N, 4] XYXY px, finite, differentiable (see the module docstring for the zero-gradient cases).
    """
    boxes = torch.nan_to_num(boxes, nan=0.0)
    x = boxes[:, 0::2].clamp(0.0, float(width))  # [N, 2]: x1, x2
    y = boxes[:, 1::2].clamp(0.0, float(height))
    out = []
    for lo_hi in (x, y):
        centre = lo_hi.mean(dim=1)
        extent = (lo_hi[:, 1] - lo_hi[:, 0]).clamp(min=MIN_BOX_SIZE)
        out.append((centre - extent / 2, centre + extent / 2))
    (x1, x2), (y1, y2) = out
    return torch.stack([x1, y1, x2, y2], dim=1)


@torch.no_grad()
def crop_boxes_roi_align(
    images: Tensor, boxes: Tensor, batch_index: Tensor, size: int, *, check_index: bool = True
) -> Tensor:
    """Crop without gradient with ONE batched ``roi_align`` call.

    Args:
        images: [B, C, H, W] float (any value range, e.g. 0..255).
        boxes: [N, 4] XYXY absolute pixels in the coordinates of ``images``.
        batch_index: [N] long, the image of each box.
        size: output side ``s`` in pixels.
        check_index: check that ``batch_index`` lies in ``[0, B)`` (see :func:`crop_boxes_differentiable`).
    Returns:
        [N, C, s, s] crops, same dtype/device as ``images``.
    """
    _check_inputs(images, boxes, batch_index, size, check_index)
    prepared = prepare_boxes(boxes.to(images.dtype), images.shape[2], images.shape[3])
    rois = torch.cat([batch_index.to(images.dtype)[:, None], prepared], dim=1)
    return roi_align(
        images, rois, output_size=int(size), spatial_scale=1.0, sampling_ratio=1, aligned=True
    )


def _mosaic(images: Tensor) -> Tensor:
    """The batch [B, C, H, W] as one image [1, C, B·(H + 2), W]: the images top to bottom, each with
    its first and last row repeated above and below it (one copy of the batch).

    The repeated rows play ``grid_sample``'s border padding at the top and bottom of every image, so
    a sample within half a pixel of an image's edge never reaches the neighbouring image.
    """
    num_images, channels, height, width = images.shape
    by_channel = images.transpose(0, 1)  # [C, B, H, W] view
    padded = torch.cat([by_channel[:, :, :1], by_channel, by_channel[:, :, -1:]], dim=2)  # [C, B, H+2, W]
    return padded.view(1, channels, num_images * (height + 2), width)


def _mosaic_grid(boxes: Tensor, batch_index: Tensor, num_images: int, height: int, width: int,
                 size: int) -> Tensor:
    """``grid_sample`` grid [1, N·s, s, 2] (x, y in [-1, 1], align_corners=False) over :func:`_mosaic`
    for the prepared ``boxes``; box ``k`` fills rows ``k·s … k·s + s − 1``.

    Output pixel ``j`` of a box ``[x1, x2]`` samples at ``x1 + (j + 0.5)(x2 − x1)/s``; in the
    mosaic, pixel row ``y`` (continuous, centres at ``i + 0.5``) of image ``b`` lies at
    ``y + b·(H + 2) + 1``.
    """
    steps = (torch.arange(size, device=boxes.device, dtype=boxes.dtype) + 0.5) / size  # [s]
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    offset = batch_index.to(boxes.dtype) * (height + 2) + 1.0  # [N] mosaic row of each image's row 0
    xs = x1[:, None] + steps[None, :] * (x2 - x1)[:, None]  # [N, s] pixel coordinates
    ys = y1[:, None] + steps[None, :] * (y2 - y1)[:, None] + offset[:, None]
    u = xs * (2.0 / width) - 1.0
    v = ys * (2.0 / (num_images * (height + 2))) - 1.0
    n = boxes.shape[0]
    grid = torch.cat(
        [u[:, None, :, None].expand(n, size, size, 1), v[:, :, None, None].expand(n, size, size, 1)], dim=3
    )  # [N, s, s, 2]
    return grid.view(1, n * size, size, 2)


def crop_boxes_differentiable(
    images: Tensor, boxes: Tensor, batch_index: Tensor, size: int, *, check_index: bool = True
) -> Tensor:
    """Bilinear crop that is differentiable w.r.t. the box coordinates and the images.

    Args:
        images: [B, C, H, W] float (any value range, e.g. 0..255).
        boxes: [N, 4] XYXY absolute pixels in the coordinates of ``images``.
        batch_index: [N] long, the image of each box.
        size: output side ``s`` in pixels.
        check_index: check that ``batch_index`` lies in ``[0, B)``: a read of its values, so done on
            CPU only (where it costs no device synchronisation); False skips it for indices that the
            caller built in range.
    Returns:
        [N, C, s, s] crops in the order of ``boxes`` (a view of the sampler's output, not
        contiguous), same dtype/device as ``images``.

    ONE ``grid_sample`` call for all the boxes of the batch, in any order and whatever the number of
    images, with no host read: the images are laid out top to bottom as one mosaic (:func:`_mosaic`,
    one copy of the batch) and the grids of all boxes, each offset to its image's rows, are stacked
    along the height axis ([1, N·s, s, 2], :func:`_mosaic_grid`). No per-box copy of the image:
    memory is O(N·s²) plus the batch. The mosaic's normalised row coordinate spans B·(H + 2) pixels,
    so its float rounding is that of an image of that height. Where a sample falls exactly on a
    pixel row's centre (a kink of bilinear interpolation, e.g. integer ``y1`` with box height ``s``),
    the gradient w.r.t. ``y1`` / ``y2`` is one of the two one-sided derivatives, and the rounding of
    the mosaic coordinate may pick the other one than a per-image sampler would; on the first row of
    an image it is the difference to the next row where the sampler's border clipping gives zero.
    """
    _check_inputs(images, boxes, batch_index, size, check_index)
    size = int(size)
    num_images, channels, height, width = images.shape
    num_boxes = boxes.shape[0]
    if num_boxes == 0:
        return images.new_zeros((0, channels, size, size))
    prepared = prepare_boxes(boxes.to(images.dtype), height, width)
    sampled = F.grid_sample(
        _mosaic(images),
        _mosaic_grid(prepared, batch_index, num_images, height, width, size),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # [1, C, N·s, s]
    return sampled.view(channels, num_boxes, size, size).transpose(0, 1)

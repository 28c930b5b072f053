"""Section 1: the crop ops (crops/s, peak memory) against the reference, and the crop-level levers."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import ProfilerActivity, profile

from dicod_d2.layers.box_crops import crop_boxes_differentiable, crop_boxes_roi_align

from .profile import self_time_s
from .reference import random_boxes, reference_crop_replicate
from .timing import peak_memory_bytes, summary, synchronize, time_call


def _crop_runner(kind: str, crop: Callable, images: Tensor, boxes: Tensor, index: Tensor, size: int):
    """A no-argument call of ``crop``: forward only ("kd_cls") or forward + backward to the boxes ("kd_loc")."""
    if kind == "kd_cls":
        def run():
            with torch.no_grad():
                return crop(images, boxes, index, size)
        return run

    def run():
        b = boxes.clone().requires_grad_(True)
        crop(images, b, index, size).mean().backward()
        return b.grad
    return run


def _sampler_share(run: Callable, device: str) -> float:
    """The share of ``run``'s own operator time (device time on CUDA, host time on CPU, one profiled
    call after one warm-up call) spent in ``grid_sample`` and its backward: the part of a
    one-sampler-call crop that no rearrangement around the sampler removes."""
    cuda = torch.device(device).type == "cuda"
    run()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        run()
        synchronize(device)
    events = prof.key_averages()
    total = sum(self_time_s(e, cuda) for e in events)
    return sum(self_time_s(e, cuda) for e in events if "grid_sampler" in e.key) / total


def _measure(run: Callable, device: str, repeats: int) -> dict:
    out = summary(time_call(run, device, repeats=repeats))
    out["peak_bytes"] = peak_memory_bytes(run, device)
    return out


def bench_crop_op(
    device: str,
    image_sizes: Sequence[tuple[int, int]] = ((800, 1333), (300, 300)),
    box_counts: Sequence[int] = (16, 128, 512),
    crop_size: int = 112,
    num_images: int = 2,
    repeats: int = 3,
    max_reference_bytes: float = 8 * 2**30,
    seed: int = 0,
) -> list[dict]:
    """Crops/s and peak memory of the project's crops vs :func:`reference_crop_replicate`.

    One row per (op, image size, N): ``op`` "kd_cls" (``crop_boxes_roi_align``, no grad) or
    "kd_loc" (``crop_boxes_differentiable``, forward + backward to the boxes); ``ours`` and
    ``reference`` measurements (``median_s``, ``peak_bytes``), ``crops_per_s``, ``speedup``
    (reference time / ours), for "kd_loc" ``sampler_share`` (:func:`_sampler_share`) and ``speedup_bound``
    (``speedup / sampler_share``: the speed-up if everything but the sampler were free), ``memory_ratio``,
    ``max_abs_diff`` (the two crops agree), and ``ours_bytes_per_crop_pixel`` (peak / (N·s²)). A reference whose N×3×H×W copy would exceed
    ``max_reference_bytes`` is skipped (reported as such).
    """
    gen = torch.Generator().manual_seed(seed)
    rows = []
    ops = {"kd_cls": crop_boxes_roi_align, "kd_loc": crop_boxes_differentiable}
    for height, width in image_sizes:
        images = (torch.rand(num_images, 3, height, width, generator=gen) * 255).to(device)
        for n in box_counts:
            boxes, index = random_boxes(n, num_images, height, width, gen)
            boxes, index = boxes.to(device), index.to(device)
            copy_bytes = n * 3 * height * width * images.element_size()
            for op, crop in ops.items():
                row = {"op": op, "image": f"{width}x{height}", "num_boxes": n, "crop_size": crop_size}
                ours = _crop_runner(op, crop, images, boxes, index, crop_size)
                row["ours"] = _measure(ours, device, repeats)
                row["crops_per_s"] = n / row["ours"]["median_s"]
                row["ours_bytes_per_crop_pixel"] = row["ours"]["peak_bytes"] / (n * crop_size**2)
                if copy_bytes > max_reference_bytes:
                    row["reference"] = f"skipped: its per-box copy needs {copy_bytes / 2**30:.1f} GiB"
                else:
                    ref = _crop_runner(op, reference_crop_replicate, images, boxes, index, crop_size)
                    row["reference"] = _measure(ref, device, repeats)
                    row["reference"]["crops_per_s"] = n / row["reference"]["median_s"]
                    row["speedup"] = row["reference"]["median_s"] / row["ours"]["median_s"]
                    row["sampler_share"] = _sampler_share(ours, device) if op == "kd_loc" else None
                    if row["sampler_share"]:
                        row["speedup_bound"] = row["speedup"] / row["sampler_share"]
                    row["memory_ratio"] = row["reference"]["peak_bytes"] / max(row["ours"]["peak_bytes"], 1)
                    with torch.no_grad():
                        row["max_abs_diff"] = float(
                            (crop(images, boxes, index, crop_size)
                             - reference_crop_replicate(images, boxes, index, crop_size)).abs().max()
                        )
                rows.append(row)
    return rows


def _roi_align_per_image(images: Tensor, boxes: Tensor, index: Tensor, size: int) -> Tensor:
    """Lever baseline: one ``roi_align`` call per image instead of one for the batch (same values)."""
    out = images.new_empty((len(boxes), images.shape[1], size, size))
    for b in range(images.shape[0]):
        sel = (index == b).nonzero(as_tuple=True)[0]
        out[sel] = crop_boxes_roi_align(images[b : b + 1], boxes[sel], torch.zeros_like(index[sel]), size)
    return out


#: the levers of :func:`bench_crop_levers`; the first variant of each is the project's default
LEVERS = (
    "gt_crop_calls", "loc_crop_order", "gt_crop_sharing", "teacher_chunk_size", "teacher_weight_grad",
    "teacher_format",
)


def bench_crop_levers(
    device: str,
    teacher,
    num_crops: int = 128,
    num_images: int = 8,
    image_size: tuple[int, int] = (800, 1333),
    chunk_sizes: Sequence[int] = (512, 64, 16),
    loc_layers: Sequence[str] = ("pixels", "stem"),
    repeats: int = 3,
    seed: int = 0,
) -> dict:
    """Crop- and teacher-level levers, each as ``{variant: {median_s, ...}}`` measured back to back.

    * ``gt_crop_calls``: the KD_cls crops of ``num_crops`` boxes over ``num_images`` images with one
      ``roi_align`` call (the project) vs one call per image.
    * ``loc_crop_order``: the KD_loc crop (forward + backward to the boxes) of the same boxes
      grouped by image (the students' order) vs interleaved; one sampler call serves any order, so
      the two should take the same time.
    * ``teacher_chunk_size``: ``teacher.logits`` on ``num_crops`` crops per chunk size (+ peak memory).
    * ``teacher_weight_grad``: the KD_loc predicted branch (teacher features to ``loc_layers`` +
      backward) with the teacher's weights ``requires_grad=False`` (the project) vs True (the
      authors' release, gradients thrown away).
    * ``gt_crop_sharing``: the gt branch of DICOD (crops, KD_cls logits, KD_loc gt features to
      ``loc_layers``) with the crops cut and normalised once and shared by both terms (the
      project) vs cut and normalised once per term.
    * ``teacher_format`` (CUDA only; on CPU a "skipped" string): logits + predicted branch in
      float32 vs channels-last vs float16 autocast.
    """
    gen = torch.Generator().manual_seed(seed)
    height, width = image_size
    images = (torch.rand(num_images, 3, height, width, generator=gen) * 255).to(device)
    boxes, index = random_boxes(num_crops, num_images, height, width, gen)
    boxes, index = boxes.to(device), index.to(device)
    size = teacher.meta.input_size
    out: dict = {"num_crops": num_crops, "num_images": num_images, "image": f"{width}x{height}"}

    def timed(run):
        return summary(time_call(run, device, repeats=repeats))

    out["gt_crop_calls"] = {
        "one_call": timed(lambda: crop_boxes_roi_align(images, boxes, index, size)),
        "per_image": timed(lambda: _roi_align_per_image(images, boxes, index, size)),
    }

    counts = torch.bincount(index, minlength=num_images)
    rank = torch.arange(len(index), device=index.device) - (torch.cumsum(counts, 0) - counts)[index]
    interleaved = torch.argsort(rank * num_images + index)  # image order 0, 1, …, 0, 1, …
    out["loc_crop_order"] = {
        order: timed(_crop_runner("kd_loc", crop_boxes_differentiable, images, boxes[p], index[p], size))
        for order, p in (("grouped", torch.arange(len(index))), ("interleaved", interleaved))
    }

    def cut() -> Tensor:
        return teacher.normalize(crop_boxes_roi_align(images, boxes, index, size), "BGR")

    crops = cut()

    def gt_branch(shared: bool) -> None:
        cls_input = cut()
        teacher.logits(cls_input)
        with torch.no_grad():
            teacher.features(cls_input if shared else cut(), loc_layers)

    out["gt_crop_sharing"] = {"shared": timed(lambda: gt_branch(True)), "separate": timed(lambda: gt_branch(False))}
    out["teacher_chunk_size"] = {}
    for chunk in chunk_sizes:
        run = lambda chunk=chunk: teacher.logits(crops, chunk_size=chunk)  # noqa: E731
        out["teacher_chunk_size"][str(chunk)] = {**timed(run), "peak_bytes": peak_memory_bytes(run, device)}

    def pred_branch():
        _pred_branch(teacher, crops, loc_layers)

    out["teacher_weight_grad"] = {"requires_grad_false": timed(pred_branch)}
    teacher.model.requires_grad_(True)
    try:
        out["teacher_weight_grad"]["requires_grad_true"] = timed(pred_branch)
    finally:
        teacher.model.requires_grad_(False)
        teacher.model.zero_grad(set_to_none=True)

    if torch.device(device).type != "cuda":
        out["teacher_format"] = "skipped: channels-last / autocast are GPU levers (--device cuda)"
        return out
    formats = {"float32": {}, "channels_last": {"channels_last": True}, "autocast_float16": {"amp_dtype": "float16"}}
    out["teacher_format"] = {}
    for name, options in formats.items():
        teacher.model.to(memory_format=torch.contiguous_format)
        variant = type(teacher)(teacher.model, teacher.meta, **options)
        out["teacher_format"][name] = timed(lambda v=variant: (v.logits(crops), _pred_branch(v, crops, loc_layers)))
    teacher.model.to(memory_format=torch.contiguous_format)
    return out


def _pred_branch(teacher, crops: Tensor, loc_layers: Sequence[str]) -> None:
    """The KD_loc predicted branch on ``crops`` [N, 3, s, s]: teacher features + backward to the crops."""
    x = crops.clone().requires_grad_(True)
    feats = teacher.features(x, loc_layers)
    sum(F.adaptive_avg_pool2d(f, 4).abs().mean() for f in feats.values()).backward()

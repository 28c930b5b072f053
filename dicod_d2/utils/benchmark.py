"""What distillation costs: timing / memory helpers and the sections of ``tools/benchmark.py``.

Sections (each returns JSON-ready dicts; times in seconds, memory in bytes):

* :func:`bench_crop_op` — the project's crops against :func:`reference_crop_replicate` (the
  authors' approach: the image replicated once per box, then ``grid_sample``), measured in the
  same run, plus the crop-level levers (one ``roi_align`` call vs one per image, teacher chunk
  size, teacher weight gradients, channels-last / autocast).
* :func:`bench_train_step` — seconds per training iteration of baseline / +KD_cls / +loc+KD_loc /
  full DICOD for each student, the variants alternating over the same batches in one process,
  with the teacher's share of the time (:class:`TeacherTimer`) and the step-level levers.
* :func:`bench_inference` — inference time and checkpoint size of a DICOD-trained student vs the
  baseline.

Memory: see :func:`memory_method` (what the ``peak_bytes`` numbers are on each device).
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..layers.box_crops import crop_boxes_differentiable, crop_boxes_roi_align, prepare_boxes

__all__ = [
    "LEVERS",
    "DEFAULT_STUDENTS",
    "STUDENTS",
    "VARIANTS",
    "TeacherTimer",
    "bench_crop_levers",
    "bench_crop_op",
    "bench_inference",
    "bench_train_step",
    "build_student",
    "format_markdown",
    "machine_info",
    "memory_method",
    "peak_memory_bytes",
    "random_boxes",
    "reference_crop_replicate",
    "synthetic_batches",
    "time_call",
    "write_random_teacher",
]

#: distillation variants of the training-step section: which DICODDistiller terms are on
VARIANTS = {
    "baseline": None,
    "kd_cls": dict(kd_cls=True, loc_pix=False, kd_loc=False),
    "loc_kd_loc": dict(kd_cls=False, loc_pix=True, kd_loc=True),
    "dicod": dict(kd_cls=True, loc_pix=True, kd_loc=True),
}


# --------------------------------------------------------------------------------- machine, timing
def machine_info(device: str) -> dict:
    """CPU model, cores, torch / torchvision versions, threads, and the GPU name when ``device`` is CUDA."""
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": device,
        "gpu": None,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    try:
        info["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels (CUDA); no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def time_call(fn: Callable[[], object], device: str, repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def memory_method(device: str) -> str:
    """What :func:`peak_memory_bytes` measures on ``device`` (recorded in the benchmark's JSON)."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated above the allocation before the call (bytes)"
    return (
        "peak of the CPU tensor bytes allocated by the call, replayed in time order from "
        "torch.profiler(profile_memory=True) events; tensors only, not the process RSS (bytes)"
    )


def peak_memory_bytes(fn: Callable[[], object], device: str) -> int:
    """Peak bytes of tensors allocated while ``fn`` runs, above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: replays the allocations / frees recorded by
    ``torch.profiler(profile_memory=True)`` in time order (an op's positive self-memory counted
    at its start, a negative one at its end, so nested frees never hide an allocation).
    """
    if torch.device(device).type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas = []
    for event in prof.events():
        mem = event.self_cpu_memory_usage
        if mem > 0:
            deltas.append((event.time_range.start, mem))
        elif mem < 0:
            deltas.append((event.time_range.end, mem))
    current = peak = 0
    for _, mem in sorted(deltas, key=lambda d: d[0]):
        current += mem
        peak = max(peak, current)
    return int(peak)


def _summary(times: Sequence[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


# ------------------------------------------------------------------------------ reference crop
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


# -------------------------------------------------------------------------------- section 1: crops
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


def _measure(run: Callable, device: str, repeats: int) -> dict:
    out = _summary(time_call(run, device, repeats=repeats))
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
    (reference time / ours), ``memory_ratio``, ``max_abs_diff`` (the two crops agree), and
    ``ours_bytes_per_crop_pixel`` (peak / (N·s²)). A reference whose N×3×H×W copy would exceed
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
      grouped by image (the students' order: no reordering) vs interleaved (sorted, then put back).
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
        return _summary(time_call(run, device, repeats=repeats))

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


# --------------------------------------------------------------------------- section 2: train step
#: students of the step / inference sections: LazyConfig file, key of the model in it, the DICOD
#: meta-architecture to set as ``_target_`` ("module:Class"), config edits, input side (px) and
#: the smallest side it accepts
STUDENTS = {
    "faster_rcnn": dict(
        config="configs/fashiondet/faster_rcnn_dicod.py", key="model", target=None,
        edits={"distiller": None}, image_size=256,
    ),
    "retinanet": dict(
        config="configs/common/models/retinanet_fashiondet.py", key="model",
        target="dicod_d2.modeling.meta_arch.retinanet:DICODRetinaNet", edits={}, image_size=256,
    ),
    "ssd300": dict(
        config="configs/common/models/ssd.py", key="model", target=None,
        edits={"backbone.width": 0.25, "backbone.norm": "BN", "num_classes": 10}, image_size=300,
        min_size=257,
    ),
    # the paper's COCO students at COCO scale (random weights; 10 classes instead of 80 changes only
    # the box predictor's last linear layers), meant to run with --teacher-arch resnet50
    "faster_rcnn_r50_coco": dict(
        config="configs/coco/faster_rcnn_r50_2x/dicod.py", key="model", target=None,
        edits={"distiller": None, "backbone.weights": None, "roi_heads.num_classes": 10}, image_size=800,
    ),
    "faster_rcnn_mobilenetv2_coco": dict(
        config="configs/coco/faster_rcnn_mobilenetv2_1x/dicod.py", key="model", target=None,
        edits={"distiller": None, "backbone.weights": None, "roi_heads.num_classes": 10}, image_size=800,
    ),
}
#: the students that the benchmark runs when ``--students`` is not given (the FashionDet-scale ones)
DEFAULT_STUDENTS = ("faster_rcnn", "retinanet", "ssd300")


def _image_size(name: str, requested: int | None) -> int:
    """The student's default input side, or ``requested`` when given and large enough for it."""
    spec = STUDENTS[name]
    return requested if requested and requested >= spec.get("min_size", 0) else spec["image_size"]


def build_student(name: str, device: str):
    """The student ``name`` of :data:`STUDENTS`, with no distiller, on ``device``.

    Raises ImportError / AttributeError / KeyError when its code or config is not in the tree yet.
    """
    import importlib

    from detectron2.config import instantiate
    from omegaconf import OmegaConf

    from ..config.lazy import load_config

    spec = STUDENTS[name]
    cfg = load_config(spec["config"])[spec["key"]]
    if spec["target"] is not None:
        module, cls = spec["target"].split(":")
        cfg._target_ = getattr(importlib.import_module(module), cls)
    for key, value in spec["edits"].items():
        OmegaConf.update(cfg, key, value, merge=False)
    return instantiate(cfg).to(device)


def synthetic_batches(
    num_batches: int, batch_size: int, image_size: int, num_classes: int = 10, seed: int = 0,
    gt_per_image: tuple[int, int] = (2, 8),
) -> list[list[dict]]:
    """detectron2 ``batched_inputs``: uint8 noise images [3, s, s] with ``gt_per_image`` = (lo, hi)
    gt boxes each, drawn uniformly in [lo, hi] (sides 8 px … s/2, random classes)."""
    lo, hi = gt_per_image
    if not 1 <= lo <= hi:
        raise ValueError(f"gt_per_image must be (lo, hi) with 1 <= lo <= hi, got {gt_per_image}.")
    from detectron2.structures import Boxes, Instances

    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        batch = []
        for _ in range(batch_size):
            n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            boxes, _ = random_boxes(n, 1, image_size, image_size, gen)
            inst = Instances((image_size, image_size))
            inst.gt_boxes = Boxes(boxes)
            inst.gt_classes = torch.randint(0, num_classes, (n,), generator=gen)
            image = torch.randint(0, 256, (3, image_size, image_size), generator=gen, dtype=torch.uint8)
            batch.append({"image": image, "height": image_size, "width": image_size, "instances": inst})
        batches.append(batch)
    return batches


class TeacherTimer:
    """Context manager that times the teacher and the distiller of one :class:`DICODDistiller`.

    Inside it, ``distiller.teacher.logits`` / ``.features`` and ``distiller.losses`` are wrapped (on
    the instances; restored on exit). Per call of :meth:`reset` … :meth:`read`:

    * ``teacher_forward_s``: time inside ``logits`` + ``features`` (both KD_loc branches);
    * ``teacher_backward_s``: from the first gradient reaching a teacher feature output to the
      gradient reaching the teacher's input (the teacher's backward; autograd runs it as one block
      because its ops are the most recent of the graph);
    * ``distiller_forward_s``: time inside ``distiller.losses`` (crops, teacher, losses);
    * ``num_positives``: K of the last ``losses`` call.
    """

    def __init__(self, distiller, device: str):
        self.distiller, self.device = distiller, device
        self.reset()

    def reset(self) -> None:
        self.forward = self.distill = 0.0
        self.backward_start: float | None = None
        self.backward_end: float | None = None
        self.num_positives = 0

    def read(self) -> dict:
        backward = 0.0
        if self.backward_start is not None and self.backward_end is not None:
            backward = self.backward_end - self.backward_start
        return {
            "teacher_forward_s": self.forward,
            "teacher_backward_s": backward,
            "distiller_forward_s": self.distill,
            "num_positives": self.num_positives,
        }

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def _timed(self, fn, attr: str):
        def wrapper(*args, **kwargs):
            start = self._now()
            out = fn(*args, **kwargs)
            setattr(self, attr, getattr(self, attr) + self._now() - start)
            return out
        return wrapper

    def _features(self, x: Tensor, layers):
        out = self._teacher_features(x, layers)
        if x.requires_grad:
            def first(grad):
                if self.backward_start is None:
                    self.backward_start = self._now()

            def last(grad):
                self.backward_end = self._now()

            for name, t in out.items():
                if name != "pixels" and t.requires_grad:
                    t.register_hook(first)
            x.register_hook(last)
        return out

    def _losses(self, images, gt_boxes, student_logits, *args, **kwargs):
        self.num_positives = int(student_logits.shape[0])
        return self._distiller_losses(images, gt_boxes, student_logits, *args, **kwargs)

    def __enter__(self) -> TeacherTimer:
        teacher = self.distiller.teacher
        self._teacher_features = teacher.features
        self._distiller_losses = self.distiller.losses
        teacher.logits = self._timed(teacher.logits, "forward")
        teacher.features = self._timed(self._features, "forward")
        self.distiller.losses = self._timed(self._losses, "distill")
        return self

    def __exit__(self, *exc) -> None:
        del self.distiller.teacher.logits, self.distiller.teacher.features, self.distiller.losses


def _train_step(model, optimizer, batch) -> None:
    from detectron2.utils.events import EventStorage

    with EventStorage(0):
        losses = model(batch)
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    optimizer.step()


def _variant_distillers(teacher, input_format: str, cap: int) -> dict:
    """``{variant: DICODDistiller or None}`` of the step section, the levers included."""
    from ..modeling.distiller import DICODDistiller

    out = {
        name: None if flags is None else DICODDistiller(teacher, input_format=input_format, **flags)
        for name, flags in VARIANTS.items()
    }
    out[f"dicod_loc_cap_{cap}"] = DICODDistiller(
        teacher, input_format=input_format, max_loc_positives_per_image=cap, **VARIANTS["dicod"]
    )
    out["dicod_teacher_weight_grad"] = DICODDistiller(teacher, input_format=input_format, **VARIANTS["dicod"])
    return out


def bench_train_step(
    device: str,
    teacher_path: str,
    students: Sequence[str] = DEFAULT_STUDENTS,
    iters: int = 5,
    batch_size: int = 4,
    loc_cap: int = 16,
    image_size: int | None = None,
    seed: int = 0,
    gt_per_image: tuple[int, int] = (2, 8),
) -> dict:
    """Seconds per training iteration (forward, backward, SGD step) per student and variant.

    Variants (:data:`VARIANTS` plus two levers): ``baseline`` (no distiller), ``kd_cls``,
    ``loc_kd_loc``, ``dicod``, ``dicod_loc_cap_<cap>`` (``max_loc_positives_per_image=cap``) and
    ``dicod_teacher_weight_grad`` (the teacher's weights ``requires_grad=True``, as in the
    authors' release). One model per student with its distiller swapped; SGD with lr 0 so every
    variant sees the same weights and positives; after one untimed warm-up round, ``iters``
    rounds, each running every variant on the same batch, in an order rotated every round. The
    batches are :func:`synthetic_batches` with ``gt_per_image`` gt boxes per image: an untrained
    student's positives are mostly its gt boxes (detectron2 adds them to the proposals), so this
    sets K.

    Per variant: ``median_s``, ``ratio_to_baseline``, ``teacher_share`` ((teacher forward +
    backward) / step time), the :class:`TeacherTimer` readings (medians), and on CUDA ``peak_bytes``.
    A student whose code or config is missing gets ``{"status": "not available: <reason>"}``.
    """
    from ..teacher.frozen import FrozenTeacher

    teacher = FrozenTeacher.from_file(teacher_path).to(device)
    results: dict = {}
    for name in students:
        try:
            torch.manual_seed(seed)
            model = build_student(name, device)
        except (ImportError, AttributeError, KeyError, FileNotFoundError) as err:
            results[name] = {"status": f"not available: {type(err).__name__}: {err}"}
            continue
        model.train()
        size = _image_size(name, image_size)
        batches = synthetic_batches(iters + 1, batch_size, size, seed=seed, gt_per_image=gt_per_image)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
        distillers = _variant_distillers(teacher, model.input_format, loc_cap)
        records: dict[str, list[dict]] = {v: [] for v in distillers}
        names = list(distillers)
        for round_index, batch in enumerate(batches):
            shift = round_index % len(names)
            for variant in names[shift:] + names[:shift]:
                records[variant].append(_timed_step(model, optimizer, batch, distillers[variant], variant, device))
        results[name] = {
            "status": "ok", "config": STUDENTS[name]["config"], "config_edits": STUDENTS[name]["edits"],
            "image_size": size, "batch_size": batch_size, "iters": iters, "gt_per_image": list(gt_per_image),
            "variants": _summarise_variants({v: r[1:] for v, r in records.items()}),
        }
        del model, optimizer
    return results


def _timed_step(model, optimizer, batch, distiller, variant: str, device: str) -> dict:
    model.distiller = distiller
    weight_grad = variant == "dicod_teacher_weight_grad"
    if weight_grad:
        distiller.teacher.model.requires_grad_(True)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        if distiller is None:
            times = time_call(lambda: _train_step(model, optimizer, batch), device, repeats=1, warmup=0)
            record = {"step_s": times[0]}
        else:
            with TeacherTimer(distiller, device) as timer:
                times = time_call(lambda: _train_step(model, optimizer, batch), device, repeats=1, warmup=0)
                record = {"step_s": times[0], **timer.read()}
    finally:
        if weight_grad:
            distiller.teacher.model.requires_grad_(False)
            distiller.teacher.model.zero_grad(set_to_none=True)
        model.distiller = None
    if cuda:
        record["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return record


def _summarise_variants(records: dict[str, list[dict]]) -> dict:
    out = {}
    for variant, recs in records.items():
        summary = {key: statistics.median(r[key] for r in recs) for key in recs[0]}
        summary["median_s"] = summary.pop("step_s")
        summary["times_s"] = [r["step_s"] for r in recs]
        if "teacher_forward_s" in summary:
            teacher = [(r["teacher_forward_s"] + r["teacher_backward_s"]) / r["step_s"] for r in recs]
            summary["teacher_share"] = statistics.median(teacher)
        out[variant] = summary
    base = out["baseline"]["median_s"]
    for summary in out.values():
        summary["ratio_to_baseline"] = summary["median_s"] / base
    return out


# ---------------------------------------------------------------------------- section 3: inference
def bench_inference(
    device: str,
    teacher_path: str,
    students: Sequence[str] = DEFAULT_STUDENTS,
    train_iters: int = 2,
    repeats: int = 5,
    batch_size: int = 2,
    image_size: int | None = None,
    seed: int = 0,
) -> dict:
    """Inference seconds per image and checkpoint bytes of a DICOD-trained student vs the baseline.

    Two students of the same architecture are trained ``train_iters`` SGD steps (lr 1e-3), one as
    the baseline and one with full DICOD; then each is saved (``state_dict`` with
    ``atomic_torch_save``) and timed in eval mode on the same images, alternating. Per student:
    ``baseline`` / ``dicod`` (``s_per_image``, ``checkpoint_bytes``, ``state_dict_keys``,
    ``teacher_keys``: keys naming the teacher or distiller, 0 expected), the ``time_ratio`` and
    ``same_state_dict_keys``.
    """
    from ..modeling.distiller import DICODDistiller
    from ..teacher.frozen import FrozenTeacher
    from .io import atomic_torch_save

    teacher = FrozenTeacher.from_file(teacher_path).to(device)
    results: dict = {}
    for name in students:
        try:
            torch.manual_seed(seed)
            models = {"baseline": build_student(name, device)}
            torch.manual_seed(seed)
            models["dicod"] = build_student(name, device)
        except (ImportError, AttributeError, KeyError, FileNotFoundError) as err:
            results[name] = {"status": f"not available: {type(err).__name__}: {err}"}
            continue
        size = _image_size(name, image_size)
        batches = synthetic_batches(train_iters + 1, batch_size, size, seed=seed)
        models["dicod"].distiller = DICODDistiller(teacher, input_format=models["dicod"].input_format)
        row: dict = {"status": "ok", "image_size": size}
        with tempfile.TemporaryDirectory() as tmp:
            for variant, model in models.items():
                model.train()
                optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
                for batch in batches[:train_iters]:
                    _train_step(model, optimizer, batch)
                path = Path(tmp) / f"{variant}.pth"
                atomic_torch_save(model.state_dict(), path)
                keys = list(torch.load(path, map_location="cpu", weights_only=True))
                row[variant] = {
                    "checkpoint_bytes": path.stat().st_size, "state_dict_keys": len(keys),
                    "teacher_keys": sum("teacher" in k or "distiller" in k for k in keys),
                }
                model.eval()
            test = [{k: v for k, v in x.items() if k != "instances"} for x in batches[-1]]
            times: dict[str, list[float]] = {v: [] for v in models}
            with torch.no_grad():
                for model in models.values():
                    model(test)  # warm-up
                for r in range(repeats):
                    for variant in list(models)[r % 2 :] + list(models)[: r % 2]:
                        times[variant] += time_call(lambda m=models[variant], t=test: m(t), device, 1, 0)
        for variant in models:
            row[variant]["s_per_image"] = statistics.median(times[variant]) / len(test)
        row["time_ratio"] = row["dicod"]["s_per_image"] / row["baseline"]["s_per_image"]
        row["same_state_dict_keys"] = list(models["dicod"].state_dict()) == list(models["baseline"].state_dict())
        results[name] = row
    return results


# ------------------------------------------------------------------------------- teacher, report
def write_random_teacher(path: str | os.PathLike, arch: str = "resnet18", input_size: int = 112) -> str:
    """Write a random-weight teacher file (10 FashionDet classes, ImageNet normalisation, RGB) to
    ``path``; its speed is that of a trained one. Returns ``str(path)``."""
    from ..data.fashion_mnist import FASHION_MNIST_CLASSES
    from ..teacher import (
        IMAGENET_PIXEL_MEAN,
        IMAGENET_PIXEL_STD,
        TeacherMeta,
        build_classifier,
        save_teacher_file,
    )

    meta = TeacherMeta(
        arch=arch, num_classes=len(FASHION_MNIST_CLASSES), class_names=list(FASHION_MNIST_CLASSES),
        input_size=input_size, channel_order="RGB", pixel_mean=IMAGENET_PIXEL_MEAN,
        pixel_std=IMAGENET_PIXEL_STD, recipe={"note": "random weights, for benchmarking only"},
    )
    save_teacher_file(path, build_classifier(arch, meta.num_classes), meta)
    return str(path)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def format_markdown(results: dict) -> str:
    """Markdown tables of a benchmark result dict (keys ``machine``, ``crop``, ``crop_levers``,
    ``step``, ``inference``; any may be absent)."""
    lines = []
    m = results.get("machine", {})
    if m:
        lines += [
            f"Machine: {m.get('cpu')} ({m.get('cpu_cores')} cores, {m.get('torch_threads')} torch threads), "
            f"torch {m.get('torch')}, device {m.get('device')}"
            + (f", GPU {m['gpu']}" if m.get("gpu") else "")
            + (f", 1-min load average at start {m['load_average_1min']:.2f}" if "load_average_1min" in m else "")
            + (f", at end {m['load_average_1min_end']:.2f}" if "load_average_1min_end" in m else ""),
            "",
        ]
    if results.get("teacher"):
        t = results["teacher"]
        lines += [f"Teacher: {t['arch']}, {t['input_size']} px, {t['weights']}", ""]
    if results.get("memory_method"):
        lines += [f"Peak memory: {results['memory_method']}", ""]
    if results.get("crop"):
        lines += [
            "| crop | image | N | ours crops/s | ours peak MiB | reference crops/s | reference peak MiB | speed-up | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["crop"]:
            ref = r["reference"]
            if isinstance(ref, dict):
                ref_cells = f"{ref['crops_per_s']:.0f} | {_mib(ref['peak_bytes'])} | {r['speedup']:.1f}× | {r['memory_ratio']:.0f}×"
            else:
                ref_cells = f"{ref} | | | "
            lines.append(
                f"| {r['op']} | {r['image']} | {r['num_boxes']} | {r['crops_per_s']:.0f} | "
                f"{_mib(r['ours']['peak_bytes'])} | {ref_cells} |"
            )
        lines.append("")
    lev = results.get("crop_levers")
    if lev:
        lines += [f"Levers ({lev['num_crops']} crops, {lev['num_images']} images of {lev['image']}; "
                  "× first = time / the lever's first variant):", "",
                  "| lever | variant | median s | × first | peak MiB |", "|---|---|---|---|---|"]
        for lever in LEVERS:
            variants = lev.get(lever, {})
            if isinstance(variants, str):
                lines.append(f"| {lever} | {variants} | | | |")
                continue
            first = next(iter(variants.values()), {}).get("median_s")
            for variant, v in variants.items():
                peak = _mib(v["peak_bytes"]) if "peak_bytes" in v else ""
                lines.append(f"| {lever} | {variant} | {v['median_s']:.4f} | {v['median_s'] / first:.2f} | {peak} |")
        lines.append("")
    for section in ("step", "inference"):
        for student, r in results.get(section, {}).items():
            if r.get("status") != "ok":
                lines += [f"{section} {student}: {r.get('status')}", ""]
    step = {k: v for k, v in results.get("step", {}).items() if v.get("status") == "ok"}
    if step:
        lines += ["| student | variant | s/iter | × baseline | teacher share | teacher fwd s | teacher bwd s | K |",
                  "|---|---|---|---|---|---|---|---|"]
        for student, r in step.items():
            gt = "{}–{} gt/image".format(*r.get("gt_per_image", ("?", "?")))
            for variant, v in r["variants"].items():
                share = f"{v['teacher_share']:.0%}" if "teacher_share" in v else ""
                fwd = f"{v['teacher_forward_s']:.3f}" if "teacher_forward_s" in v else ""
                bwd = f"{v['teacher_backward_s']:.3f}" if "teacher_backward_s" in v else ""
                k = f"{v['num_positives']:.0f}" if "num_positives" in v else ""
                lines.append(
                    f"| {student} ({r['batch_size']}×{r['image_size']}², {gt}) | {variant} | {v['median_s']:.3f} | "
                    f"{v['ratio_to_baseline']:.2f} | {share} | {fwd} | {bwd} | {k} |"
                )
        lines.append("")
    inf = {k: v for k, v in results.get("inference", {}).items() if v.get("status") == "ok"}
    if inf:
        lines += ["| student | baseline s/image | DICOD s/image | ratio | baseline ckpt bytes | DICOD ckpt bytes "
                  "| same keys | teacher keys |", "|---|---|---|---|---|---|---|---|"]
        for student, r in inf.items():
            b, d = r["baseline"], r["dicod"]
            lines.append(
                f"| {student} | {b['s_per_image']:.4f} | {d['s_per_image']:.4f} | {r['time_ratio']:.2f} | "
                f"{b['checkpoint_bytes']} | {d['checkpoint_bytes']} | {r['same_state_dict_keys']} | "
                f"{d['teacher_keys']} |"
            )
        lines.append("")
    return "\n".join(lines)

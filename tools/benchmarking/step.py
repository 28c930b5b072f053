"""Section 2: seconds per training iteration of each distillation variant, with the teacher's share."""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch
from torch import Tensor

from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.modeling.variants import VARIANTS
from dicod_d2.teacher.frozen import FrozenTeacher

from .students import (
    DEFAULT_STUDENTS,
    STUDENTS,
    available_students,
    image_size_for,
    sgd,
    synthetic_batches,
    train_step,
)
from .timing import synchronize, time_call

#: the variants of the step section (names of :data:`dicod_d2.modeling.variants.VARIANTS`)
STEP_VARIANTS = ("baseline", "kd_cls", "loc_kd_loc", "dicod")


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


def _variant_distillers(teacher, input_format: str, cap: int) -> dict:
    """``{variant: DICODDistiller or None}`` of the step section, the levers included."""
    terms = {name: VARIANTS[name].terms for name in STEP_VARIANTS}
    out = {
        name: None if flags is None else DICODDistiller(teacher, input_format=input_format, **flags)
        for name, flags in terms.items()
    }
    out[f"dicod_loc_cap_{cap}"] = DICODDistiller(
        teacher, input_format=input_format, max_loc_positives_per_image=cap, **terms["dicod"]
    )
    out["dicod_teacher_weight_grad"] = DICODDistiller(teacher, input_format=input_format, **terms["dicod"])
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

    Variants (:data:`STEP_VARIANTS` plus two levers): ``baseline`` (no distiller), ``kd_cls``,
    ``loc_kd_loc``, ``dicod``, ``dicod_loc_cap_<cap>`` (``max_loc_positives_per_image=cap``) and
    ``dicod_teacher_weight_grad`` (the teacher's weights ``requires_grad=True``, as in the
    authors' release). One model per student with its distiller swapped; SGD with lr 0 so every
    variant sees the same weights and positives; after one untimed warm-up round, ``iters``
    rounds, each running every variant on the same batch, in an order rotated every round. The
    batches are :func:`synthetic_batches` with ``gt_per_image`` gt boxes per image: an untrained
    student's positives are mostly its gt boxes (detectron2 adds them to the proposals), so this
    sets K.

    Per variant: ``median_s``, ``ratio_to_baseline``, ``teacher_share`` ((teacher forward +
    backward) / the time of the instrumented step, see :func:`_timed_step`), the
    :class:`TeacherTimer` readings (medians), and on CUDA ``peak_bytes``.
    A student whose code or config is missing gets ``{"status": "not available: <reason>"}``.
    """
    teacher = FrozenTeacher.from_file(teacher_path).to(device)
    results: dict = {}
    for name, (model,) in available_students(students, device, seed, results):
        model.train()
        size = image_size_for(name, image_size)
        batches = synthetic_batches(iters + 1, batch_size, size, seed=seed, gt_per_image=gt_per_image)
        optimizer = sgd(model, lr=0.0)
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


def _timed_step(model, optimizer, batch, distiller, variant: str, device: str,
                plain_step: bool | None = None) -> dict:
    """One training step of ``variant``: ``step_s`` and, for a distilled variant, the
    :class:`TeacherTimer` readings with ``instrumented_step_s``, the step they were read in.

    The timer synchronises the device at every teacher and distiller boundary. On CUDA that drains
    the kernel queue several times per step and slows the step itself, so there ``step_s`` comes
    from a second, uninstrumented step on the same batch (lr 0: the same weights). On CPU the
    synchronisation is a no-op and one step gives both. ``plain_step`` forces either way
    (default: on CUDA only).
    """
    model.distiller = distiller
    weight_grad = variant == "dicod_teacher_weight_grad"
    if weight_grad:
        distiller.teacher.model.requires_grad_(True)
    cuda = torch.device(device).type == "cuda"
    plain_step = cuda if plain_step is None else plain_step
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        return time_call(lambda: train_step(model, optimizer, batch), device, repeats=1, warmup=0)[0]

    try:
        record = {}
        if distiller is not None:
            with TeacherTimer(distiller, device) as timer:
                record["instrumented_step_s"] = step()
                record.update(timer.read())
        record["step_s"] = step() if plain_step or distiller is None else record["instrumented_step_s"]
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
            teacher = [(r["teacher_forward_s"] + r["teacher_backward_s"]) / r["instrumented_step_s"]
                       for r in recs]
            summary["teacher_share"] = statistics.median(teacher)
        out[variant] = summary
    base = out["baseline"]["median_s"]
    for summary in out.values():
        summary["ratio_to_baseline"] = summary["median_s"] / base
    return out

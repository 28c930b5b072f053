"""Section ``profile``: where the time of a baseline and a full DICOD training step goes.

``torch.profiler`` records a few training steps of each variant (after warm-up steps) and the
operators are ranked by their own time: on CUDA the device time of their kernels, on CPU the host
time. Besides the ranking, each variant reports per step the calls that stall a GPU pipeline or cost
a launch each:

* ``host_reads``: the data-dependent reads of a tensor's values by the host, each a device
  synchronisation on a GPU: every scalar read (``aten::_local_scalar_dense``, which ``.item()``,
  ``int()``, ``bool()`` and ``if tensor:`` end in) and the operators whose output size depends on the
  values (``aten::nonzero``, which boolean-mask indexing calls, and ``torch.unique``'s
  ``aten::_unique2`` / ``aten::unique_*``); ``host_reads_by_op`` names them. On CPU the profiler does
  not see ``.tolist()`` (no operator runs); on CUDA it shows up as a ``cudaMemcpy``.
* ``operator_launches``: the ``aten::`` operators called from Python or from the autograd engine
  (not those that other operators call inside), the device-independent count of what a GPU
  launches one or more kernels for;
* on CUDA, ``host_syncs`` (``cudaStreamSynchronize`` / ``cudaDeviceSynchronize``), ``memcpy``
  (``cudaMemcpy*``) and ``kernel_launches`` (``cudaLaunchKernel``).

``dicod_minus_baseline`` is full DICOD's count minus the baseline's, per label: what the distiller
adds to a step. The step section says how much DICOD costs; this one says what in it costs, so that
a speed-up can aim at it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.modeling.variants import VARIANTS
from dicod_d2.teacher.frozen import FrozenTeacher

from .students import (
    DEFAULT_STUDENTS,
    available_students,
    image_size_for,
    sgd,
    synthetic_batches,
    train_step,
)
from .timing import synchronize

#: the variants profiled (names of :data:`dicod_d2.modeling.variants.VARIANTS`)
PROFILE_VARIANTS = ("baseline", "dicod")
#: operators that read tensor values back to the host (exact names; ``aten::item`` is not listed
#: because it always calls ``aten::_local_scalar_dense``, which is)
HOST_READ_OPS = (
    "aten::_local_scalar_dense", "aten::nonzero", "aten::_unique", "aten::_unique2", "aten::unique_dim",
    "aten::unique_consecutive", "aten::unique_dim_consecutive",
)
#: CUDA runtime calls counted per step (substring match), grouped under a label
CUDA_COUNTED = {
    "host_syncs": ("cudaStreamSynchronize", "cudaDeviceSynchronize"),
    "memcpy": ("cudaMemcpy",),
    "kernel_launches": ("cudaLaunchKernel",),
}
#: the labels of ``per_step`` (and of ``dicod_minus_baseline``)
COUNTED = ("host_reads", "operator_launches", *CUDA_COUNTED)


def self_time_s(event, cuda: bool) -> float:
    """An operator's own time (s) in a profiler event: its kernels' device time on CUDA, host time on CPU."""
    us = getattr(event, "self_device_time_total", 0.0) if cuda else event.self_cpu_time_total
    return float(us) / 1e6


def _is_operator(name: str) -> bool:
    return name.startswith("aten::")


def count_calls(events, steps: int) -> dict:
    """Per-step counts of :data:`COUNTED` (and ``host_reads_by_op``) over the profiler's ``events``
    (``prof.events()``: every call, with its parent)."""
    per_step = dict.fromkeys(COUNTED, 0.0)
    by_op: dict = {}
    for e in events:
        if e.name in HOST_READ_OPS:
            by_op[e.name] = by_op.get(e.name, 0.0) + 1.0 / steps
            per_step["host_reads"] += 1.0 / steps
        if _is_operator(e.name) and (e.cpu_parent is None or not _is_operator(e.cpu_parent.name)):
            per_step["operator_launches"] += 1.0 / steps
        for label, keys in CUDA_COUNTED.items():
            if any(k in e.name for k in keys):
                per_step[label] += 1.0 / steps
    return {"per_step": per_step, "host_reads_by_op": dict(sorted(by_op.items()))}


def summarize_profile(prof, steps: int, cuda: bool, top: int) -> dict:
    """``{"top_ops": [...], "per_step": {label: count}, "host_reads_by_op": {op: count}}`` of a
    finished ``torch.profiler.profile``.

    ``top_ops``: the ``top`` operators by own time (device time on CUDA, host time on CPU), each
    ``{"name", "calls_per_step", "self_s_per_step"}``; ``per_step`` and ``host_reads_by_op``: see
    :func:`count_calls`.
    """
    ranked = sorted(prof.key_averages(), key=lambda e: self_time_s(e, cuda), reverse=True)
    top_ops = [
        {"name": e.key, "calls_per_step": e.count / steps, "self_s_per_step": self_time_s(e, cuda) / steps}
        for e in ranked[:top] if self_time_s(e, cuda) > 0
    ]
    return {"top_ops": top_ops, **count_calls(prof.events(), steps)}


def profile_train_step(
    device: str,
    teacher_path: str,
    students: Sequence[str] = DEFAULT_STUDENTS,
    steps: int = 3,
    warmup: int = 2,
    batch_size: int = 4,
    image_size: int | None = None,
    gt_per_image: tuple[int, int] = (2, 8),
    top: int = 15,
    seed: int = 0,
) -> dict:
    """Per student and variant (:data:`PROFILE_VARIANTS`), :func:`summarize_profile` of ``steps``
    training steps (SGD, lr 0) after ``warmup`` unrecorded ones, on :func:`synthetic_batches`.

    Per student: ``{"status": "ok", "image_size", "batch_size", "steps", "variants": {variant:
    summarize_profile(...)}, "dicod_minus_baseline": {label: count per step}}``. A student whose code
    or config is missing gets ``{"status": "not available: <reason>"}``.
    """
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    teacher = FrozenTeacher.from_file(teacher_path).to(device)
    results: dict = {}
    for name, (model,) in available_students(students, device, seed, results):
        model.train()
        size = image_size_for(name, image_size)
        batches = synthetic_batches(warmup + steps, batch_size, size, seed=seed, gt_per_image=gt_per_image)
        optimizer = sgd(model, lr=0.0)
        out = {"status": "ok", "image_size": size, "batch_size": batch_size, "steps": steps, "variants": {}}
        for variant in PROFILE_VARIANTS:
            flags = VARIANTS[variant].terms
            model.distiller = None if flags is None else DICODDistiller(
                teacher, input_format=model.input_format, **flags)
            for batch in batches[:warmup]:
                train_step(model, optimizer, batch)
            synchronize(device)
            with profile(activities=activities) as prof:
                for batch in batches[warmup:]:
                    train_step(model, optimizer, batch)
                synchronize(device)
            out["variants"][variant] = summarize_profile(prof, steps, cuda, top)
        base, dicod = (out["variants"][v]["per_step"] for v in PROFILE_VARIANTS)
        out["dicod_minus_baseline"] = {label: dicod[label] - base[label] for label in COUNTED}
        model.distiller = None
        results[name] = out
        del model, optimizer
    return results


def format_profile_markdown(results: dict) -> list[str]:
    """Markdown lines: per student, the counted calls per step (baseline, DICOD, difference), the host
    reads by operator, and DICOD's top operators beside the baseline's time for the same operator."""
    lines = []
    for name, res in results.items():
        if res.get("status") != "ok":
            lines += [f"{name}: {res.get('status')}", ""]
            continue
        base, dicod = (res["variants"][v] for v in PROFILE_VARIANTS)
        diff = res["dicod_minus_baseline"]
        lines += [f"Profile of {name} ({res['batch_size']}×{res['image_size']}², {res['steps']} steps), per step:", "",
                  "| calls | baseline | DICOD | DICOD − baseline |", "|---|---|---|---|"]
        lines += [f"| {label} | {base['per_step'][label]:.0f} | {dicod['per_step'][label]:.0f} | {diff[label]:+.0f} |"
                  for label in COUNTED]
        for op in sorted(set(base["host_reads_by_op"]) | set(dicod["host_reads_by_op"])):
            b, d = base["host_reads_by_op"].get(op, 0.0), dicod["host_reads_by_op"].get(op, 0.0)
            lines.append(f"| host reads: `{op}` | {b:.0f} | {d:.0f} | {d - b:+.0f} |")
        base_time = {op["name"]: op["self_s_per_step"] for op in base["top_ops"]}
        lines += ["", "| operator (DICOD's top) | DICOD ms/step | calls/step | baseline ms/step |", "|---|---|---|---|"]
        for op in dicod["top_ops"]:
            b = base_time.get(op["name"])
            lines.append(f"| `{op['name']}` | {1e3 * op['self_s_per_step']:.2f} | {op['calls_per_step']:.0f} | "
                         + (f"{1e3 * b:.2f} |" if b is not None else "– |"))
        lines.append("")
    return lines

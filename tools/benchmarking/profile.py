"""Section ``profile``: where the time of a baseline and a full DICOD training step goes.

``torch.profiler`` records a few training steps of each variant (after warm-up steps) and the
operators are ranked by their own time: on CUDA the device time of their kernels, on CPU the host
time. Besides the ranking, each variant reports the calls that stall a GPU pipeline or cost a launch
each: host-device synchronisations (``cudaStreamSynchronize`` / ``cudaDeviceSynchronize``, and the
data-dependent ``aten::item`` / ``aten::nonzero`` / ``aten::_local_scalar_dense`` that cause them),
copies (``cudaMemcpyAsync``) and kernel launches (``cudaLaunchKernel``). The step section says how
much DICOD costs; this one says what in it costs, so that a speed-up can aim at it.
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
#: profiler event names counted per step (substring match), grouped under a label
COUNTED = {
    "host_syncs": ("cudaStreamSynchronize", "cudaDeviceSynchronize"),
    "data_dependent_ops": ("aten::item", "aten::nonzero", "aten::_local_scalar_dense"),
    "memcpy": ("cudaMemcpy",),
    "kernel_launches": ("cudaLaunchKernel",),
}


def _self_time_s(event, cuda: bool) -> float:
    us = getattr(event, "self_device_time_total", 0.0) if cuda else event.self_cpu_time_total
    return float(us) / 1e6


def summarize_profile(events, steps: int, cuda: bool, top: int) -> dict:
    """``{"top_ops": [...], "per_step": {label: count}}`` of ``prof.key_averages()``.

    ``top_ops``: the ``top`` operators by own time (device time on CUDA, host time on CPU), each
    ``{"name", "calls_per_step", "self_s_per_step"}``; ``per_step``: the :data:`COUNTED` calls per step.
    """
    ranked = sorted(events, key=lambda e: _self_time_s(e, cuda), reverse=True)
    top_ops = [
        {"name": e.key, "calls_per_step": e.count / steps, "self_s_per_step": _self_time_s(e, cuda) / steps}
        for e in ranked[:top] if _self_time_s(e, cuda) > 0
    ]
    per_step = {
        label: sum(e.count for e in events if any(k in e.key for k in keys)) / steps
        for label, keys in COUNTED.items()
    }
    return {"top_ops": top_ops, "per_step": per_step}


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

    A student whose code or config is missing gets ``{"status": "not available: <reason>"}``.
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
            out["variants"][variant] = summarize_profile(prof.key_averages(), steps, cuda, top)
        model.distiller = None
        results[name] = out
        del model, optimizer
    return results


def format_profile_markdown(results: dict) -> list[str]:
    """Markdown lines: per student, the counted calls per step and DICOD's top operators beside the
    baseline's time for the same operator."""
    lines = []
    for name, res in results.items():
        if res.get("status") != "ok":
            lines += [f"{name}: {res.get('status')}", ""]
            continue
        base, dicod = (res["variants"][v] for v in PROFILE_VARIANTS)
        lines += [f"Profile of {name} ({res['batch_size']}×{res['image_size']}², {res['steps']} steps), per step:", "",
                  "| calls | baseline | DICOD |", "|---|---|---|"]
        lines += [f"| {label} | {base['per_step'][label]:.0f} | {dicod['per_step'][label]:.0f} |" for label in COUNTED]
        base_time = {op["name"]: op["self_s_per_step"] for op in base["top_ops"]}
        lines += ["", "| operator (DICOD's top) | DICOD ms/step | calls/step | baseline ms/step |", "|---|---|---|---|"]
        for op in dicod["top_ops"]:
            b = base_time.get(op["name"])
            lines.append(f"| `{op['name']}` | {1e3 * op['self_s_per_step']:.2f} | {op['calls_per_step']:.0f} | "
                         + (f"{1e3 * b:.2f} |" if b is not None else "– |"))
        lines.append("")
    return lines

"""Section 3: inference time and checkpoint size of a DICOD-trained student vs the baseline."""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.teacher.frozen import FrozenTeacher
from dicod_d2.utils.io import atomic_torch_save

from .students import (
    DEFAULT_STUDENTS,
    available_students,
    image_size_for,
    sgd,
    synthetic_batches,
    train_step,
)
from .timing import time_call


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
    teacher = FrozenTeacher.from_file(teacher_path).to(device)
    results: dict = {}
    for name, (baseline, dicod) in available_students(students, device, seed, results, copies=2):
        models = {"baseline": baseline, "dicod": dicod}
        size = image_size_for(name, image_size)
        batches = synthetic_batches(train_iters + 1, batch_size, size, seed=seed)
        models["dicod"].distiller = DICODDistiller(teacher, input_format=models["dicod"].input_format)
        row: dict = {"status": "ok", "image_size": size}
        with tempfile.TemporaryDirectory() as tmp:
            for variant, model in models.items():
                model.train()
                optimizer = sgd(model, lr=1e-3)
                for batch in batches[:train_iters]:
                    train_step(model, optimizer, batch)
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

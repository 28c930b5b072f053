"""Is a student deployable? ONNX export, COCO AP and CPU latency of ONNX Runtime next to PyTorch.

:func:`deployable_student` is the one call behind ``tools/benchmark.py --sections export`` and
the demo report's "deployable student" line (formatted by the demo, ``tools/demo_pipeline/report.py``).
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances

from ..evaluation import COCOEvaluator
from ..inference.images import read_image
from ..inference.student import load_student
from .onnx import OnnxDetector
from .student import export_student

__all__ = ["coco_ap", "deployable_student", "latency_ms", "torch_single_fn"]

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]
SingleFn = Callable[[np.ndarray], Detections]


def torch_single_fn(detector) -> SingleFn:
    """One [3, H, W] uint8 array → numpy detections, through a PyTorch ``StudentDetector``."""
    return lambda image: tuple(t.cpu().numpy() for t in detector(torch.from_numpy(image)))


def _dataset_images(dataset_name: str, image_format: str, limit: int | None = None):
    for record in DatasetCatalog.get(dataset_name)[:limit]:
        image = read_image(record["file_name"], image_format)
        yield record, np.ascontiguousarray(image.transpose(2, 0, 1))


def coco_ap(run: SingleFn, dataset_name: str, image_format: str, output_dir: str | None = None,
            limit: int | None = None) -> dict[str, float]:
    """detectron2's COCO box metrics (``AP``, ``AP50``, … in percent) of ``run`` on a registered
    dataset, one image at a time (the first ``limit`` images when given)."""
    evaluator = COCOEvaluator(dataset_name, output_dir=output_dir)
    evaluator.reset()
    image_ids = []
    for record, image in _dataset_images(dataset_name, image_format, limit):
        boxes, scores, classes = run(image)
        instances = Instances((record["height"], record["width"]), pred_boxes=Boxes(torch.as_tensor(boxes)),
                              scores=torch.as_tensor(scores), pred_classes=torch.as_tensor(classes))
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
        image_ids.append(record["image_id"])
    return dict(evaluator.evaluate(img_ids=image_ids)["bbox"])


def latency_ms(run: SingleFn, images: Sequence[np.ndarray], warmup: int = 2) -> dict[str, float]:
    """Per-image latency of ``run`` (preprocessing, network, post-processing; not decoding):
    ``p50`` / ``p90`` / ``mean`` milliseconds over ``images`` after ``warmup`` untimed calls."""
    for image in list(images)[:warmup]:
        run(image)
    times = []
    for image in images:
        start = time.perf_counter()
        run(image)
        times.append((time.perf_counter() - start) * 1e3)
    deciles = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else times * 9
    return {"p50": statistics.median(times), "p90": deciles[8], "mean": statistics.fmean(times),
            "images": len(times)}


class _torch_threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, the previous count restored after."""

    def __init__(self, n: int):
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self):
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def deployable_student(
    config_file: str,
    checkpoint: str,
    dataset_name: str | None,
    output_dir: str | os.PathLike,
    *,
    threads: Sequence[int] = (1,),
    latency_images: int = 20,
    ap_limit: int | None = None,
    overrides: Sequence[str] = (),
) -> dict:
    """Export a trained student to ONNX and compare ONNX Runtime with PyTorch on one dataset.

    Args:
        config_file, checkpoint: the student (a DICOD config needs no teacher file).
        dataset_name: registered dataset for AP and latency images (None: the config's test set).
        output_dir: where ``student.onnx`` and the evaluators' files go.
        threads: CPU thread counts to time (PyTorch ``set_num_threads``, ONNX Runtime intra-op).
        latency_images: images timed per runtime and thread count (the dataset's first ones).
        ap_limit: evaluate on the first ``ap_limit`` images only (None: all).
    Returns:
        ``{"onnx": path, "onnx_mb", "checkpoint_mb", "dataset", "ap": {"pytorch": AP, "onnx": AP},
        "ap50": {...}, "latency_ms": {"pytorch": {threads: {p50, p90, mean, images}}, "onnx": {...}}}``
        (AP in percent, as detectron2 reports it; latency keys are thread counts as strings).
    """
    output_dir = Path(output_dir)
    student = load_student(config_file, checkpoint, overrides=overrides, device="cpu")
    dataset_name = dataset_name or student.dataset_name
    onnx_path = export_student(student, output_dir / "student.onnx")
    fmt = student.input_format
    runs = {"pytorch": lambda n: torch_single_fn(student.detector),
            "onnx": lambda n: OnnxDetector(onnx_path, threads=n)}
    result: dict = {"onnx": str(onnx_path), "onnx_mb": onnx_path.stat().st_size / 1e6,
                    "checkpoint_mb": os.path.getsize(checkpoint) / 1e6, "dataset": dataset_name,
                    "ap": {}, "ap50": {}, "latency_ms": {"pytorch": {}, "onnx": {}}}
    with _torch_threads(max(threads)):
        for name, make in runs.items():
            metrics = coco_ap(make(max(threads)), dataset_name, fmt, str(output_dir / name), ap_limit)
            result["ap"][name], result["ap50"][name] = metrics["AP"], metrics["AP50"]
    images = [im for _, im in _dataset_images(dataset_name, fmt, latency_images)]
    for n in threads:
        with _torch_threads(n):
            for name, make in runs.items():
                result["latency_ms"][name][str(n)] = latency_ms(make(n), images)
    return result


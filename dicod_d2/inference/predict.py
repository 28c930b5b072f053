"""Run a detector over image files: drawn images and one COCO-results ``predictions.json``.

The detector is any callable from a list of [3, H, W] uint8 arrays (in its channel order) to one
(boxes [N, 4] XYXY pixels, scores [N], classes [N]) per image: a PyTorch
:class:`~dicod_d2.inference.detector.StudentDetector` (:func:`torch_batch_fn`) or an ONNX
Runtime :class:`~dicod_d2.export.onnx.OnnxDetector` (called one image at a time).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from detectron2.data.catalog import Metadata
from detectron2.structures import Boxes, Instances
from detectron2.utils.visualizer import Visualizer
from PIL import Image
from tqdm import tqdm

from ..utils.io import atomic_path, atomic_write_text, ensure_writable_dir
from .detector import StudentDetector
from .images import UnreadableImage, read_image

__all__ = ["PredictSummary", "coco_results", "predict_images", "torch_batch_fn"]

logger = logging.getLogger("dicod_d2")

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]
BatchFn = Callable[[list[np.ndarray]], list[Detections]]


@dataclass
class PredictSummary:
    """What a run did: images predicted, files skipped (path, reason), detections kept, seconds."""

    images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    detections: int = 0
    seconds: float = 0.0


def torch_batch_fn(detector: StudentDetector, device: str = "cpu") -> BatchFn:
    """A :data:`BatchFn` running ``detector`` in PyTorch on one batch per call."""

    def run(images: list[np.ndarray]) -> list[Detections]:
        tensors = [torch.from_numpy(im).to(device) for im in images]
        return [tuple(t.cpu().numpy() for t in out) for out in detector.predict_batch(tensors)]

    return run


def coco_results(image_id: int, file_name: str, detections: Detections,
                 category_ids: Sequence[int]) -> list[dict]:
    """COCO results entries (``bbox`` XYWH pixels) of one image, with its ``file_name``."""
    boxes, scores, classes = detections
    return [
        {"image_id": image_id, "file_name": file_name, "category_id": int(category_ids[int(c)]),
         "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
         "score": round(float(s), 5)}
        for (x0, y0, x1, y1), s, c in zip(boxes, scores, classes, strict=True)
    ]


def _draw(image_hwc: np.ndarray, image_format: str, detections: Detections, class_names: list[str],
          path: Path) -> None:
    rgb = image_hwc[:, :, ::-1] if image_format == "BGR" else image_hwc
    boxes, scores, classes = detections
    instances = Instances(rgb.shape[:2], pred_boxes=Boxes(torch.as_tensor(boxes)),
                          scores=torch.as_tensor(scores), pred_classes=torch.as_tensor(classes))
    drawn = Visualizer(rgb, Metadata(thing_classes=class_names)).draw_instance_predictions(instances)
    with atomic_path(path) as tmp:
        Image.fromarray(drawn.get_image()).save(tmp, format="JPEG", quality=90)


def _output_names(paths: Sequence[Path]) -> list[str]:
    """One drawn-image name per input: its stem + .jpg, numbered when two inputs share a stem."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        k = seen.get(p.stem, 0)
        seen[p.stem] = k + 1
        names.append(f"{p.stem}.jpg" if k == 0 else f"{p.stem}_{k}.jpg")
    return names


def _run(batch_fn: BatchFn, images: list[np.ndarray], run_errors: tuple[type[Exception], ...]) -> list:
    """``batch_fn(images)``; when it raises one of ``run_errors``, the images one at a time, each
    failing image's entry being its exception."""
    try:
        return batch_fn(images)
    except run_errors as e:
        if len(images) == 1:
            return [e]
    return [_run(batch_fn, [image], run_errors)[0] for image in images]


def predict_images(
    paths: Sequence[Path],
    batch_fn: BatchFn,
    *,
    image_format: str,
    class_names: list[str],
    category_ids: Sequence[int],
    output_dir: str | Path,
    score_thresh: float = 0.5,
    batch_size: int = 1,
    draw: bool = True,
    run_errors: tuple[type[Exception], ...] = (),
) -> PredictSummary:
    """Predict every image of ``paths``; write ``output_dir``/``<stem>.jpg`` (drawn detections)
    and ``output_dir``/``predictions.json`` (COCO results, ``image_id`` = index in ``paths``).

    A file that cannot be read as an image, or on which ``batch_fn`` raises one of ``run_errors``
    (e.g. ONNX Runtime failing on one image), is skipped with one warning line naming it, and
    counted in the summary; the run goes on. Detections below ``score_thresh`` are dropped.
    """
    output_dir = Path(output_dir)
    ensure_writable_dir(output_dir)
    summary, results = PredictSummary(), []
    names = _output_names(paths)
    start = time.perf_counter()
    todo = list(enumerate(paths))
    with tqdm(total=len(todo), unit="img", desc="predict", file=sys.stderr, dynamic_ncols=True) as bar:
        for first in range(0, len(todo), batch_size):
            batch = []
            for index, path in todo[first:first + batch_size]:
                try:
                    batch.append((index, path, read_image(path, image_format)))
                except UnreadableImage as e:
                    summary.skipped.append((str(path), str(e)))
                    tqdm.write(f"skipped (not a readable image): {e}", file=sys.stderr)
                    bar.update(1)
            if not batch:
                continue
            outputs = _run(batch_fn, [np.ascontiguousarray(im.transpose(2, 0, 1)) for _, _, im in batch],
                           run_errors)
            for (index, path, image), output in zip(batch, outputs, strict=True):
                if isinstance(output, Exception):
                    summary.skipped.append((str(path), str(output)))
                    tqdm.write(f"skipped (the model failed on it): {path}: {output}", file=sys.stderr)
                    continue
                summary.images += 1
                boxes, scores, classes = output
                keep = scores >= score_thresh
                detections = (boxes[keep], scores[keep], classes[keep])
                results.extend(coco_results(index, str(path), detections, category_ids))
                summary.detections += int(keep.sum())
                if draw:
                    _draw(image, image_format, detections, class_names, output_dir / names[index])
            bar.update(len(batch))
    atomic_write_text(output_dir / "predictions.json", json.dumps(results))
    summary.seconds = time.perf_counter() - start
    return summary

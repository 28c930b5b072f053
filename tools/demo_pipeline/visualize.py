"""Test images with two students' detections side by side (detectron2's Visualizer)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances
from detectron2.utils.visualizer import Visualizer
from PIL import Image, ImageDraw

from dicod_d2.inference.images import read_image
from dicod_d2.inference.student import LoadedStudent
from dicod_d2.utils.io import atomic_path


def detections(student: LoadedStudent, file_name: str) -> tuple[np.ndarray, Instances]:
    """``student``'s detections on one image file, as the student sees it at test time (its test
    resize and channel order): the image (``[H, W, 3]`` uint8 RGB) and its ``Instances`` in that
    image's pixels."""
    image = read_image(file_name, student.input_format)
    chw = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
    boxes, scores, classes = student.detector(chw)
    rgb = image if student.input_format == "RGB" else image[:, :, ::-1]
    inst = Instances(rgb.shape[:2], pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes)
    return np.ascontiguousarray(rgb), inst


def top_detections(inst: Instances, k: int, score_thresh: float) -> Instances:
    """The ``k`` highest-scoring detections of ``inst`` with score >= ``score_thresh``, best first."""
    inst = inst[inst.scores >= score_thresh]
    return inst[inst.scores.argsort(descending=True)[:k]]


def side_by_side(students: dict[str, LoadedStudent], dataset: str, out_dir: str | Path,
                 num_images: int = 4, score_thresh: float = 0.05) -> list[Path]:
    """For the first ``num_images`` of ``dataset``, one PNG (``<dataset>_<image id>.png``) with each
    student's detections side by side: as many as the image has objects, the highest-scoring ones
    with score >= ``score_thresh`` (the students' scores are calibrated differently: SSD's rarely
    pass 0.3 on FashionDet, Faster R-CNN's often pass 0.9)."""
    meta = MetadataCatalog.get(dataset)
    written = []
    for record in DatasetCatalog.get(dataset)[:num_images]:
        k = len(record.get("annotations", []))
        panels = []
        for name, student in students.items():
            rgb, inst = detections(student, record["file_name"])
            panel = Visualizer(rgb, meta, scale=2.0).draw_instance_predictions(
                top_detections(inst, k, score_thresh)).get_image()
            panel = np.concatenate([np.full((28, panel.shape[1], 3), 255, np.uint8), panel], 0)
            pil = Image.fromarray(panel)
            title = f"{name}: top {k} detections (= objects in the image), score >= {score_thresh}"
            ImageDraw.Draw(pil).text((6, 6), title, fill=(0, 0, 0))
            panels.append(np.asarray(pil))
        sep = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
        row = np.concatenate([p for pair in zip(panels, [sep] * len(panels), strict=True) for p in pair][:-1], 1)
        path = Path(out_dir) / f"{dataset}_{record['image_id']:06d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(row).save(tmp, format="PNG")
        written.append(path)
    return written

"""Validation images with two models' detections side by side (detectron2's Visualizer)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import Visualizer
from PIL import Image, ImageDraw

from ..inference.student import inference_config
from ..utils.io import atomic_path


def load_detector(config_file: str, checkpoint: str, overrides: Sequence[str] = ()):
    """A trained detector in eval mode on the CPU (no teacher is needed for inference)."""
    model = instantiate(inference_config(config_file, [*overrides, "train.device=cpu"]).model).eval()
    DetectionCheckpointer(model).load(checkpoint)
    return model


@torch.no_grad()
def side_by_side(models: dict[str, torch.nn.Module], dataset: str, out_dir: str | Path,
                 num_images: int = 4, score_thresh: float = 0.5) -> list[Path]:
    """For the first ``num_images`` of ``dataset``, one PNG (``<dataset>_<image id>.png``) with each
    model's detections side by side."""
    meta = MetadataCatalog.get(dataset)
    written = []
    for record in DatasetCatalog.get(dataset)[:num_images]:
        image = read_image(record["file_name"], format="BGR")
        panels = []
        for name, model in models.items():
            tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
            inst = model([{"image": tensor, "height": image.shape[0], "width": image.shape[1]}])
            inst = inst[0]["instances"].to("cpu")
            inst = inst[inst.scores >= score_thresh]
            vis = Visualizer(image[:, :, ::-1], meta, scale=2.0)
            panel = vis.draw_instance_predictions(inst).get_image()
            panel = np.concatenate([np.full((28, panel.shape[1], 3), 255, np.uint8), panel], 0)
            pil = Image.fromarray(panel)
            ImageDraw.Draw(pil).text((6, 6), f"{name} (score >= {score_thresh})", fill=(0, 0, 0))
            panels.append(np.asarray(pil))
        sep = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
        row = np.concatenate([p for pair in zip(panels, [sep] * len(panels), strict=True) for p in pair][:-1], 1)
        path = Path(out_dir) / f"{dataset}_{record['image_id']:06d}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(row).save(tmp, format="PNG")
        written.append(path)
    return written

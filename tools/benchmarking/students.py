"""The students of the step and inference sections, built from their LazyConfig files, synthetic
detectron2 batches for them, and one SGD step."""
from __future__ import annotations

import importlib
from typing import Sequence

import torch
from detectron2.config import instantiate
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from omegaconf import OmegaConf

from dicod_d2.config.lazy import load_config

from .reference import random_boxes

#: students of the step / inference sections: LazyConfig file, key of the model in it, the DICOD
#: meta-architecture to set as ``_target_`` ("module:Class"), config edits, input side (px) and
#: the smallest side it accepts
STUDENTS = {
    "faster_rcnn": dict(
        config="configs/fashiondet/faster_rcnn/dicod.py", key="model", target=None,
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


def image_size_for(name: str, requested: int | None) -> int:
    """The student's default input side, or ``requested`` when given and large enough for it."""
    spec = STUDENTS[name]
    return requested if requested and requested >= spec.get("min_size", 0) else spec["image_size"]


def build_student(name: str, device: str):
    """The student ``name`` of :data:`STUDENTS`, with no distiller, on ``device``.

    Raises ImportError / AttributeError / KeyError when its code or config is not in the tree yet.
    """
    spec = STUDENTS[name]
    cfg = load_config(spec["config"])[spec["key"]]
    if spec["target"] is not None:
        module, cls = spec["target"].split(":")
        cfg._target_ = getattr(importlib.import_module(module), cls)
    for key, value in spec["edits"].items():
        OmegaConf.update(cfg, key, value, merge=False)
    return instantiate(cfg).to(device)


def available_students(names: Sequence[str], device: str, seed: int, results: dict, copies: int = 1):
    """Yield ``(name, [model, ...])`` for each student of ``names`` whose code and config are in the
    tree: ``copies`` models built by :func:`build_student`, each right after ``torch.manual_seed(seed)``
    (so the copies start from the same weights). A student that cannot be built gets
    ``results[name] = {"status": "not available: <reason>"}`` and is skipped."""
    for name in names:
        try:
            models = []
            for _ in range(copies):
                torch.manual_seed(seed)
                models.append(build_student(name, device))
        except (ImportError, AttributeError, KeyError, FileNotFoundError) as err:
            results[name] = {"status": f"not available: {type(err).__name__}: {err}"}
            continue
        yield name, models


def sgd(model, lr: float) -> torch.optim.SGD:
    """Plain SGD over the trainable parameters of ``model`` (lr 0: every step sees the same weights)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)


def synthetic_batches(
    num_batches: int, batch_size: int, image_size: int, num_classes: int = 10, seed: int = 0,
    gt_per_image: tuple[int, int] = (2, 8),
) -> list[list[dict]]:
    """detectron2 ``batched_inputs``: uint8 noise images [3, s, s] with ``gt_per_image`` = (lo, hi)
    gt boxes each, drawn uniformly in [lo, hi] (sides 8 px … s/2, random classes)."""
    lo, hi = gt_per_image
    if not 1 <= lo <= hi:
        raise ValueError(f"gt_per_image must be (lo, hi) with 1 <= lo <= hi, got {gt_per_image}.")
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


def train_step(model, optimizer, batch) -> None:
    """One forward, backward and optimizer step of a detectron2 ``model`` on ``batch``."""
    with EventStorage(0):
        losses = model(batch)
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    optimizer.step()

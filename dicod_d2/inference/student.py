"""Load a trained student for inference from its config and checkpoint alone.

A DICOD config builds its teacher from ``model.distiller.teacher.path``; the teacher only adds
training losses (the paper's Eq. 1 terms) and is never used at inference, so the student is built
with ``model.distiller=None`` (logged) and no teacher file is needed.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog

from ..config.lazy import drop_distiller, load_config
from ..engine.checkpoint import AtomicCheckpointer
from .detector import InGraphResize, StudentDetector, resize_from_augmentations

__all__ = ["LoadedStudent", "load_student"]

logger = logging.getLogger("dicod_d2")


@dataclass
class LoadedStudent:
    """A student ready for inference.

    detector: the plain-tensor :class:`StudentDetector` (eval mode, on ``device``);
    class_names: ``thing_classes`` of the config's test dataset (index = predicted class);
    category_ids: the dataset's category id of each class index (COCO results);
    dataset_name: the config's test dataset; config_file: the config it was built from.
    """

    detector: StudentDetector
    class_names: list[str]
    category_ids: list[int]
    dataset_name: str
    config_file: str

    @property
    def input_format(self) -> str:
        return self.detector.input_format


def _test_dataset_name(cfg) -> str:
    names = cfg.dataloader.test.dataset.names
    return names if isinstance(names, str) else list(names)[0]


def _category_ids(dataset_name: str, num_classes: int) -> list[int]:
    """Dataset category id per class index: the metadata's mapping when the dataset was loaded,
    else 1..C (COCO's convention, FashionDet's ids)."""
    mapping = MetadataCatalog.get(dataset_name).get("thing_dataset_id_to_contiguous_id", None)
    if mapping:
        inverse = {v: k for k, v in mapping.items()}
        return [int(inverse[i]) for i in range(num_classes)]
    return list(range(1, num_classes + 1))


def set_score_thresh(model: torch.nn.Module, score_thresh: float) -> None:
    """Set the test score threshold of a Faster R-CNN (box predictor) or dense (RetinaNet, SSD) student."""
    if hasattr(model, "roi_heads"):
        model.roi_heads.box_predictor.test_score_thresh = score_thresh
    else:
        model.test_score_thresh = score_thresh


def inference_config(config_file: str | os.PathLike, overrides: Sequence[str] = ()):
    """A student's config for inference: its distiller, and so its teacher, removed (logged); no
    teacher file is needed. ``overrides``: strict ``key=value`` config overrides."""
    import dicod_d2.data  # noqa: F401  registers the built-in datasets (class names)

    cfg = load_config(config_file, overrides)
    teacher = drop_distiller(cfg)
    if teacher is not None:
        logger.info("Inference: the student is built without its distiller; the teacher (%s) is "
                    "dropped and not needed.", teacher)
    return cfg


def load_student(
    config_file: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    overrides: Sequence[str] = (),
    score_thresh: float | None = None,
    device: str = "cpu",
) -> LoadedStudent:
    """Build the student of ``config_file`` without its teacher and load ``checkpoint``.

    Args:
        config_file: a student LazyConfig (path, or relative to the packaged configs).
        checkpoint: a training checkpoint (``model_final.pth``) or a detectron2 model file.
        overrides: ``key=value`` config overrides (strict, as for training).
        score_thresh: test score threshold; None keeps the config's.
        device: "cpu" or "cuda[:i]".
    Raises:
        FileNotFoundError: missing config or checkpoint; RuntimeError: unreadable checkpoint;
        CheckpointError: a checkpoint whose weights do not fit the config's model.
    """
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist: pass the student's "
                                "model_final.pth (from its train.output_dir).")
    cfg = inference_config(config_file, overrides)
    model = instantiate(cfg.model).to(device).eval()
    AtomicCheckpointer(model).load_fitting(str(checkpoint), model_name=f"the model of '{config_file}'",
                                           fix="Use the config the student was trained with.")
    if score_thresh is not None:
        set_score_thresh(model, score_thresh)
    augmentations = instantiate(cfg.dataloader.test.mapper.augmentations)
    resize: InGraphResize = resize_from_augmentations(list(augmentations or []))
    dataset_name = _test_dataset_name(cfg)
    class_names = list(MetadataCatalog.get(dataset_name).get("thing_classes", []))
    num_classes = cfg.model.get("num_classes", None) or cfg.model.roi_heads.num_classes
    if len(class_names) != num_classes:
        class_names = [f"class {i}" for i in range(num_classes)]
    return LoadedStudent(
        detector=StudentDetector(model, resize, model.input_format),
        class_names=class_names,
        category_ids=_category_ids(dataset_name, num_classes),
        dataset_name=dataset_name,
        config_file=str(config_file),
    )

"""Export a loaded student to ONNX with the metadata a user needs to run it without this package."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..inference.student import LoadedStudent
from .onnx import export_onnx

__all__ = ["export_student"]


def export_student(student: LoadedStudent, path: str | os.PathLike,
                   sample_size: tuple[int, int] = (256, 256)) -> Path:
    """Write ``student`` as an ONNX graph (see :mod:`dicod_d2.export.onnx`) to ``path``.

    The graph is traced on a fixed-seed noise image of ``sample_size`` (H, W) on the CPU; its
    metadata holds ``input_format``, ``class_names`` (one per line), ``category_ids`` (comma
    separated, the dataset's id of each class index), ``dataset`` and ``config``.
    """
    detector = student.detector.cpu()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randint(0, 256, (3, *sample_size), dtype=torch.uint8, generator=generator)
    metadata = {
        "input_format": student.input_format,
        "class_names": "\n".join(student.class_names),
        "category_ids": ",".join(str(i) for i in student.category_ids),
        "dataset": student.dataset_name,
        "config": student.config_file,
    }
    return export_onnx(detector, path, sample, metadata)

"""Detectors and their DICOD students: meta-architectures, heads, backbones and the distiller."""
from .distiller import (
    DetectorNormalizer,
    DICODDistiller,
    DistillationPositives,
    DistillationStudent,
    raw_images,
)
from .meta_arch import SSD, DICODGeneralizedRCNN, DICODRetinaNet
from .roi_heads import DICODROIHeads

__all__ = [
    "DICODDistiller",
    "DICODGeneralizedRCNN",
    "DICODROIHeads",
    "DICODRetinaNet",
    "DetectorNormalizer",
    "DistillationPositives",
    "DistillationStudent",
    "SSD",
    "raw_images",
]

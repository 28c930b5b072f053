"""Detectors and their DICOD students: meta-architectures, heads, backbones and the distiller."""
from .distiller import DICODDistiller, DistillationStudent, raw_images
from .meta_arch import DICODGeneralizedRCNN
from .roi_heads import DICODROIHeads, ROIPositives

__all__ = [
    "DICODDistiller",
    "DICODGeneralizedRCNN",
    "DICODROIHeads",
    "DistillationStudent",
    "ROIPositives",
    "raw_images",
]

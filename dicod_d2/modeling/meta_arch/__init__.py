"""Detector meta-architectures with the DICOD distillation hook (:class:`DistillationStudent`)."""
from .rcnn import DICODGeneralizedRCNN
from .retinanet import DICODRetinaNet
from .ssd import SSD

__all__ = ["DICODGeneralizedRCNN", "DICODRetinaNet", "SSD"]

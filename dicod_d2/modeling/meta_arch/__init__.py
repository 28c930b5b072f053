"""Detector meta-architectures with the DICOD distillation hook."""
from .rcnn import DICODGeneralizedRCNN

__all__ = ["DICODGeneralizedRCNN"]

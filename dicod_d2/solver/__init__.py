"""Optimizers for the students' configs."""
from .clipping import SGDClipGradNorm

__all__ = ["SGDClipGradNorm"]

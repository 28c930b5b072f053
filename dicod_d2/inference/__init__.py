"""Inference with a trained student: load it without its teacher, read images, predict, draw.

See :mod:`.detector` (the plain-tensor detector shared with the ONNX export), :mod:`.student`,
:mod:`.images` and :mod:`.predict`.
"""
from .detector import InGraphResize, StudentDetector
from .student import LoadedStudent, load_student

__all__ = ["InGraphResize", "LoadedStudent", "StudentDetector", "load_student"]

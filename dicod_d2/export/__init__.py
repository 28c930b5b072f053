"""Deploying a student: ONNX export (:mod:`.onnx`, :mod:`.student`), parity checks
(:mod:`.parity`) and the deployability measurement (:mod:`.deployable`)."""
from .onnx import ONNX_OPSET, OnnxDetector, UnsupportedOperatorError, export_onnx
from .parity import ParityResult, compare_detections
from .student import export_student

__all__ = ["ONNX_OPSET", "OnnxDetector", "ParityResult", "UnsupportedOperatorError", "compare_detections",
           "export_onnx", "export_student"]

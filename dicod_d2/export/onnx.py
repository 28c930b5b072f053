"""Export a :class:`~dicod_d2.inference.detector.StudentDetector` to ONNX and run it with ONNX Runtime.

Exporter: torch's TorchScript-based ``torch.onnx.export(..., dynamo=False)``. It traces the
student's own detectron2 inference code, whose shape-dependent steps (padding to
``size_divisibility``, anchors, proposal top-k, box clipping and rescaling) detectron2 already
writes with traced tensors, and it has symbolics for torchvision's ``nms`` and ``roi_align``
(opset ≥ 16). The dynamo exporter (``torch.export``) needs every data-dependent shape (the
number of boxes after the score filter and NMS) declared, which detectron2's ``Instances`` code
does not do.

The graph: input ``image`` uint8 [3, H, W] (dynamic H, W) in the student's channel order;
outputs ``boxes`` float32 [N, 4] XYXY pixels of that image, ``scores`` float32 [N], ``classes``
int64 [N] (dynamic N), after the student's own post-processing (score filter, top-k, NMS).
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, UserError, one_line
from ..utils.io import atomic_path

__all__ = ["ONNX_OPSET", "OnnxDetector", "OnnxRunError", "UnsupportedOperatorError", "export_onnx"]

logger = logging.getLogger("dicod_d2")

#: ONNX opset of the export: ≥ 16 for torchvision's aligned ROIAlign; 17 is the oldest that
#: every current ONNX Runtime supports with this graph's operators
ONNX_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "scores", "classes")


class UnsupportedOperatorError(UserError, RuntimeError):
    """An operator of the model has no ONNX translation at the export's opset; names the operator."""


class OnnxRunError(RuntimeError):
    """ONNX Runtime failed on one image (e.g. a graph exported by an older version whose traced
    sizes do not fit it); the message is ONNX Runtime's, on one line."""


def export_onnx(detector: torch.nn.Module, path: str | os.PathLike, sample_image: torch.Tensor,
                metadata: dict[str, str] | None = None, opset: int = ONNX_OPSET,
                output_names: tuple[str, ...] = OUTPUT_NAMES) -> Path:
    """Trace ``detector`` on ``sample_image`` ([3, H, W] uint8) and write the ONNX graph to ``path``
    atomically (see the module docstring for its inputs and outputs), with ``metadata`` as the
    model's metadata properties (read back by :class:`OnnxDetector`). ``output_names`` name the
    module's outputs (dynamic first dimension).

    Raises:
        UnsupportedOperatorError: an operator cannot be exported (the message names it).
    """
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the tracer warns at every Python-level shape check of detectron2 (asserts, empty-input
        # branches); the graph is checked against PyTorch by tests on several sizes instead
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                detector, (sample_image,), str(tmp), opset_version=opset, dynamo=False,
                input_names=[INPUT_NAME], output_names=list(output_names),
                dynamic_axes={INPUT_NAME: {1: "height", 2: "width"},
                              **{name: {0: "detections"} for name in output_names}},
            )
        except torch.onnx.errors.UnsupportedOperatorError as e:
            match = re.search(r"operator '([^']+)'", str(e))
            op = match.group(1) if match else str(e)
            raise UnsupportedOperatorError(
                f"the model cannot be exported to ONNX at opset {opset}: operator '{op}' has no ONNX "
                "translation. Replace the layer that uses it, or export at a higher opset."
            ) from e
        if metadata:
            import onnx

            graph = onnx.load(str(tmp))
            for key, value in metadata.items():
                graph.metadata_props.add(key=key, value=value)
            onnx.save(graph, str(tmp))
    logger.info("Exported %s (opset %d, %.1f MB)", path, opset, path.stat().st_size / 1e6)
    return path


class OnnxDetector:
    """An exported student run with ONNX Runtime; needs only ``onnxruntime`` and numpy.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model '{path}' does not exist: write it with tools/export_model.py.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 4  # fatal only: a failed run is reported by OnnxRunError
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001  onnxruntime raises its own exception types
            raise CheckpointError(
                f"ONNX model '{path}' cannot be loaded by ONNX Runtime ({one_line(str(e))}): export it again "
                "with tools/export_model.py"
            ) from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.input_format = meta.get("input_format", "BGR")
        self.class_names = [c for c in meta.get("class_names", "").split("\n") if c]
        self.category_ids = [int(c) for c in meta.get("category_ids", "").split(",") if c]

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """image: [3, H, W] uint8 in :attr:`input_format` → boxes [N, 4], scores [N], classes [N].

        Raises:
            OnnxRunError: ONNX Runtime failed on this image.
        """
        try:
            boxes, scores, classes = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(image, np.uint8)})
        except Exception as e:  # noqa: BLE001  onnxruntime raises its own exception types
            raise OnnxRunError(f"ONNX Runtime failed on a {image.shape[-2]}x{image.shape[-1]} image: "
                               f"{one_line(str(e))}") from e
        return boxes, scores, classes

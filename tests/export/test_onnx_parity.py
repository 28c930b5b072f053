"""ONNX Runtime gives the detections of PyTorch for every student family (Faster R-CNN, RetinaNet,
SSD), on FashionDet tiny val images at two sizes and on an image without detections.

The students are built from their DICOD configs with randomly initialised weights saved as a
checkpoint (no teacher file exists: the export must not need one). Their BatchNorm layers in eval
mode give varied, confident scores, so every family yields tens to hundreds of real detections
(score >= 0.05) per image, each of which must be matched.
"""
import logging

import numpy as np
import onnx
import pytest
import torch
from detectron2.config import instantiate

from dicod_d2.config.lazy import load_config
from dicod_d2.export import (
    ONNX_OPSET,
    OnnxDetector,
    UnsupportedOperatorError,
    compare_detections,
    export_onnx,
)
from dicod_d2.export.student import export_student
from dicod_d2.inference.images import read_image
from dicod_d2.inference.student import load_student

FAMILIES = {
    "faster_rcnn": "configs/fashiondet/faster_rcnn/dicod.py",
    "retinanet": "configs/fashiondet/retinanet/dicod.py",
    "ssd": "configs/fashiondet/ssd/dicod.py",
}


def _random_checkpoint(config: str, path) -> str:
    cfg = load_config(config)
    cfg.model.distiller = None
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def exported(request, tmp_path_factory, tiny_fashiondet):
    """(family, PyTorch student, ONNX Runtime detector, val images [3, H, W] uint8 in its format,
    checkpoint, .onnx path)."""
    tmp = tmp_path_factory.mktemp(request.param)
    checkpoint = _random_checkpoint(FAMILIES[request.param], tmp / "model_final.pth")
    student = load_student(FAMILIES[request.param], checkpoint)
    path = export_student(student, tmp / "student.onnx")
    files = sorted((tiny_fashiondet / "val").glob("*.jpg"))[:2]
    images = [np.ascontiguousarray(read_image(f, student.input_format).transpose(2, 0, 1)) for f in files]
    return request.param, student, OnnxDetector(path), images, checkpoint, path


def _torch(student, image):
    return [t.numpy() for t in student.detector(torch.from_numpy(image))]


def test_graph_interface(exported):
    _, student, detector, _, _, path = exported
    model = onnx.load(path)
    assert model.opset_import[0].version >= 17
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_value == 3 and dims[1].dim_param and dims[2].dim_param  # dynamic H, W
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "classes"]
    assert detector.input_format == student.input_format
    assert detector.class_names == student.class_names and len(detector.class_names) == 10


@pytest.mark.parametrize("size", ["native", "cropped"])
def test_onnx_runtime_gives_the_pytorch_detections(exported, size):
    family, student, detector, images, _, _ = exported
    for image in images:
        if size == "cropped":  # another size and aspect ratio than the traced 256 x 256
            image = np.ascontiguousarray(image[:, 10:210, 30:180])
        reference, other = _torch(student, image), detector(image)
        result = compare_detections(reference, other, min_score=0.05, box_tol=0.5, score_tol=1e-3)
        assert result.ok, (family, size, result.unmatched[:5])
        assert result.matched >= 10, (family, size, result.matched)  # real detections were compared
        h, w = image.shape[1:]
        boxes = other[0]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert other[2].dtype == np.int64 and other[1].dtype == np.float32


def test_an_image_without_detections(exported, tmp_path):
    """At a score threshold no score reaches, both runtimes return empty outputs (the graph's
    empty path: score filter, top-k and NMS on zero boxes)."""
    family, _, _, images, checkpoint, _ = exported
    student = load_student(FAMILIES[family], checkpoint, score_thresh=1.0)
    detector = OnnxDetector(export_student(student, tmp_path / "empty.onnx"))
    for image in (images[0], np.ascontiguousarray(images[0][:, :120, :200])):
        boxes, scores, classes = detector(image)
        assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,), family
        assert len(_torch(student, image)[1]) == 0


def test_the_teacher_is_dropped_and_logged(exported, caplog):
    family, _, _, _, checkpoint, _ = exported
    with caplog.at_level(logging.INFO, logger="dicod_d2"):
        student = load_student(FAMILIES[family], checkpoint)
    assert "teacher" in caplog.text and "dropped" in caplog.text
    assert getattr(student.detector.model, "distiller", None) is None


def test_an_operator_without_onnx_translation_is_named(tmp_path):
    class Bessel(torch.nn.Module):
        def forward(self, image):
            return torch.special.i0(image.float())

    with pytest.raises(UnsupportedOperatorError, match="aten::i0"):
        export_onnx(Bessel(), tmp_path / "x.onnx", torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert ONNX_OPSET >= 17

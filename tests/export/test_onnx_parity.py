"""ONNX Runtime gives the detections of PyTorch for a tiny trained student of every family (Faster
R-CNN, RetinaNet, SSD), on FashionDet tiny val images at two sizes and on an image without detections.

Each student is trained from its DICOD config on the tiny FashionDet through the training entry
point (``tools/lazyconfig_train_net.py``'s ``main``) with a random teacher file until it detects
(a few iterations, continued within a bound where a CPU's arithmetic left it without detections);
the teacher file is deleted before the export: the export must not need it. Parity is checked as
:func:`~dicod_d2.export.compare_detections` states it: every detection with score >= 0.05 of either
runtime is matched by one of the other with the same class, boxes within 0.5 px and score within 1e-3.
"""
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES
from demo_pipeline.report import deployable_line  # the demo formats the report line
from detectron2.data import MetadataCatalog

from dicod_d2.data.datasets import thing_classes
from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.train_loop import main
from dicod_d2.errors import CheckpointError
from dicod_d2.export import (
    ONNX_OPSET,
    OnnxDetector,
    UnsupportedOperatorError,
    compare_detections,
    export_onnx,
)
from dicod_d2.export.deployable import coco_ap, deployable_student, torch_single_fn
from dicod_d2.export.student import export_student
from dicod_d2.inference.images import read_image
from dicod_d2.inference.student import load_student
from dicod_d2.teacher import write_random_teacher

FAMILIES = {
    "faster_rcnn": "configs/fashiondet/faster_rcnn/dicod.py",
    "retinanet": "configs/fashiondet/retinanet/dicod.py",
    "ssd": "configs/fashiondet/ssd/dicod.py",
}
#: the first training of each student: iterations and overrides. Usually enough for detections with
#: score >= 0.05 on the val images used (RetinaNet's scores start at its 0.01 prior) and for SSD's
#: softmax to leave its early saturation at 1.0 (tied scores, which the runtimes' NMS may break
#: differently); SSD at twice its lr to get there sooner
TRAINING = {
    "faster_rcnn": (8, []),
    "retinanet": (60, []),
    "ssd": (24, ["optimizer.lr=0.004"]),
}
#: how often a student that does not detect yet is trained on (resumed) by its first iterations
#: again: a few iterations' result depends on the CPU's arithmetic (kernels, summation order), so
#: the fixture trains until the student detects, within this bound, instead of a fixed count
MAX_EXTENSIONS = 3
#: the score threshold of both runtimes: below 0.05 - 1e-3, so that the partner of a detection
#: scoring just above 0.05 is in the other runtime's output (see compare_detections)
SCORE_THRESH = 0.04
#: a score this close to 1 is a saturated softmax (SSD early in training): several such detections
#: tie, and the two runtimes' NMS may keep different boxes of a tie
SATURATED = 1.0 - 1e-6


def _train(family: str, out, teacher: str, iterations: int, resume: bool) -> str:
    """Train ``family``'s DICOD student on the tiny FashionDet at batch 2 without warm-up (the
    configs warm up over 100 iterations) up to iteration ``iterations``, from the last checkpoint
    in ``out`` when ``resume``; returns its ``model_final.pth``."""
    argv = ["--config-file", str(REPO / FAMILIES[family]), *TINY_OVERRIDES, f"train.output_dir={out}",
            f"train.max_iter={iterations}", "train.eval_period=0", "lr_multiplier.warmup_factor=1.0",
            f"model.distiller.teacher.path={teacher}", *TRAINING[family][1]]
    logger = logging.getLogger("dicod_d2")
    propagate = logger.propagate
    try:
        main(default_argument_parser().parse_args((["--resume"] if resume else []) + argv))
    finally:  # the training's logger setup stops propagation, which pytest's caplog relies on
        logger.propagate = propagate
    return str(out / "model_final.pth")


def _check_images(student) -> list:
    """The two val images the parity tests use, [3, H, W] uint8 in ``student``'s format."""
    files = sorted((Path(MetadataCatalog.get("fashiondet_tiny_val").image_root)).glob("*.jpg"))[:2]
    return [np.ascontiguousarray(read_image(f, student.input_format).transpose(2, 0, 1)) for f in files]


def _detects(family: str, checkpoint: str) -> bool:
    """Whether the student of ``checkpoint`` gives what the tests compare: detections with score
    >= 0.05 on the check images at both sizes, at most one of them saturated (:data:`SATURATED`), and (RetinaNet, SSD) an AP50 above 0 on tiny val
    as :func:`deployable_student` measures it (the student at its config's score threshold)."""
    student = load_student(FAMILIES[family], checkpoint, score_thresh=SCORE_THRESH)
    for crop in (False, True):
        found = 0
        for image in _check_images(student):
            if crop:
                image = np.ascontiguousarray(image[:, 10:210, 30:180])
            scores = _torch(student, image)[1]
            if (scores >= SATURATED).sum() > 1:  # tied scores: each runtime's NMS may keep another box
                return False
            found += int((scores >= 0.05).sum())
        if not found:
            return False
    if family == "faster_rcnn":  # no AP after a few iterations; its AP is not tested
        return True
    student = load_student(FAMILIES[family], checkpoint, device="cpu")
    return coco_ap(torch_single_fn(student.detector), "fashiondet_tiny_val", student.input_format)["AP50"] > 0


def _trained_student(family: str, out, teacher: str) -> str:
    """The checkpoint of ``family``'s student trained until it detects (:func:`_detects`): its
    first iterations, then as many again (resumed) up to :data:`MAX_EXTENSIONS` times."""
    first = TRAINING[family][0]
    for round_ in range(MAX_EXTENSIONS + 1):
        checkpoint = _train(family, out, teacher, first * (round_ + 1), resume=round_ > 0)
        if _detects(family, checkpoint):
            return checkpoint
    raise AssertionError(f"the {family} student detects nothing after {first * (MAX_EXTENSIONS + 1)} iterations")


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def exported(request, tmp_path_factory, tiny_fashiondet):
    """(family, PyTorch student, ONNX Runtime detector, val images [3, H, W] uint8 in its format,
    checkpoint, .onnx path) of a tiny student trained until it detects."""
    tmp = tmp_path_factory.mktemp(request.param)
    teacher = tmp / "teacher.pth"
    write_random_teacher(teacher, thing_classes("fashiondet_tiny_train"), input_size=16)
    checkpoint = _trained_student(request.param, tmp / "run", str(teacher))
    teacher.unlink()
    student = load_student(FAMILIES[request.param], checkpoint, score_thresh=SCORE_THRESH)
    path = export_student(student, tmp / "student.onnx")
    return request.param, student, OnnxDetector(path), _check_images(student), checkpoint, path


def _torch(student, image):
    return [t.numpy() for t in student.detector(torch.from_numpy(image))]


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("size", ["native", "cropped"])
def test_onnx_runtime_gives_the_pytorch_detections(exported, size):
    """Two val images at the traced 256 x 256 and cropped to 200 x 150: the same detections with
    score >= 0.05 in both runtimes, and some of them (the trained student detects)."""
    family, student, detector, images, _, _ = exported
    compared = 0
    for image in images:
        if size == "cropped":  # another size and aspect ratio than the traced 256 x 256
            image = np.ascontiguousarray(image[:, 10:210, 30:180])
        reference, other = _torch(student, image), detector(image)
        result = compare_detections(reference, other, min_score=0.05, box_tol=0.5, score_tol=1e-3)
        assert result.ok, (family, size, result.unmatched[:5])
        compared += int((reference[1] >= 0.05).sum())
        h, w = image.shape[1:]
        boxes = other[0]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
        assert other[2].dtype == np.int64 and other[1].dtype == np.float32
    assert compared > 0, (family, size)


#: (H, W) of the images cut from (small) or tiled out of (large) a val image; the traced image is 256 x 256
SMALL_AND_LARGE = {"1x1": (1, 1), "8x8": (8, 8), "32x32": (32, 32), "large": (600, 800)}


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(SMALL_AND_LARGE))
def test_small_and_large_images(exported, size):
    """Images far from the traced size run in ONNX Runtime with the detections of PyTorch (Faster
    R-CNN's graph once froze its traced proposal count: fewer proposals on a small image failed)."""
    family, student, detector, images, _, _ = exported
    h, w = SMALL_AND_LARGE[size]
    for image in images:
        tiled = np.tile(image, (1, 3, 4))  # 768 x 1024
        image = np.ascontiguousarray(tiled[:, 100:100 + h, 100:100 + w])
        reference, other = _torch(student, image), detector(image)
        result = compare_detections(reference, other, min_score=0.05, box_tol=0.5, score_tol=1e-3)
        # a 1-pixel image resized to the input is uniform: many anchors score the same to float
        # rounding, and top-k / NMS may keep either of two tied boxes in each runtime
        tied = min(h, w) == 1 and len(result.unmatched) <= 0.05 * (result.matched + len(result.unmatched))
        assert result.ok or tied, (family, size, result.unmatched[:5])
        assert other[0].shape == (len(other[1]), 4) and other[2].dtype == np.int64


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_teacher_is_dropped_and_logged(exported, caplog):
    family, _, _, _, checkpoint, _ = exported
    with caplog.at_level(logging.INFO, logger="dicod_d2"):
        student = load_student(FAMILIES[family], checkpoint)
    assert "teacher" in caplog.text and "dropped" in caplog.text
    assert getattr(student.detector.model, "distiller", None) is None


@pytest.mark.slow
def test_deployable_student(exported, tmp_path):
    """The demo's "deployable student" row of a trained student: the ONNX file, the COCO AP of both
    runtimes on all of tiny val (the same, and not 0 = 0), latencies and sizes, and the report line."""
    family, _, _, _, checkpoint, _ = exported
    if family == "faster_rcnn":  # AP 0 on tiny val after 8 (also 30) iterations: 0 = 0 proves nothing
        pytest.skip("the tiny Faster R-CNN student has no AP to compare (README: AP parity measured on val)")
    r = deployable_student(FAMILIES[family], checkpoint, "fashiondet_tiny_val", tmp_path / "out",
                           threads=(1,), latency_images=3)
    assert (tmp_path / "out/student.onnx").is_file() and r["onnx_mb"] > 0.1 and r["checkpoint_mb"] > 0.1
    assert r["dataset"] == "fashiondet_tiny_val"
    assert 0 < r["ap50"]["pytorch"] <= 100, family  # a trained student finds something
    assert abs(r["ap"]["onnx"] - r["ap"]["pytorch"]) <= 0.1 and abs(r["ap50"]["onnx"] - r["ap50"]["pytorch"]) <= 0.1
    for runtime in ("pytorch", "onnx"):
        t = r["latency_ms"][runtime]["1"]
        assert 0 < t["p50"] <= t["p90"] and t["images"] == 3
    line = deployable_line(r)
    assert line.startswith("Deployable student: exported to ONNX") and f"{r['ap']['onnx']:.2f}" in line


def test_an_operator_without_onnx_translation_is_named(tmp_path):
    class Bessel(torch.nn.Module):
        def forward(self, image):
            return torch.special.i0(image.float())

    with pytest.raises(UnsupportedOperatorError, match="aten::i0"):
        export_onnx(Bessel(), tmp_path / "x.onnx", torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert ONNX_OPSET >= 17


def test_an_onnx_file_that_onnx_runtime_cannot_load_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "student.onnx"
    bad.write_bytes(b"not an ONNX graph\n" * 4)
    with pytest.raises(CheckpointError, match=r"ONNX model '.*student\.onnx' cannot be loaded by ONNX Runtime \(.*\): export it again") as info:
        OnnxDetector(bad)
    assert "\n" not in str(info.value)


def test_the_matching_criterion():
    """Every detection with score >= 0.05 of either side needs its own partner on the other side:
    same class, box coordinates within 0.5 px, score within 1e-3 (the partner may score below 0.05)."""
    boxes = np.array([[10, 10, 50, 60], [100, 100, 140, 180]], np.float32)
    reference = (boxes, np.array([0.9, 0.0502], np.float32), np.array([1, 2]))

    def check(boxes=boxes, scores=(0.9, 0.0502), classes=(1, 2)):
        return compare_detections(reference, (np.asarray(boxes, np.float32), np.array(scores, np.float32),
                                              np.array(classes)), min_score=0.05, box_tol=0.5, score_tol=1e-3)

    assert check(boxes + 0.49, (0.9009, 0.0498)).ok  # within tolerances; a partner just below 0.05
    assert check(boxes + 0.51).unmatched == [("reference", 0), ("reference", 1), ("other", 0), ("other", 1)]
    assert check(scores=(0.9011, 0.0502)).unmatched == [("reference", 0), ("other", 0)]
    assert check(classes=(1, 3)).unmatched == [("reference", 1), ("other", 1)]
    assert check(boxes[:1], (0.9,), (1,)).unmatched == [("reference", 1)]  # a missing detection
    extra = np.concatenate([boxes, [[0, 0, 5, 5]]])
    assert check(extra, (0.9, 0.0502, 0.05), (1, 2, 0)).unmatched == [("other", 2)]
    assert check(extra, (0.9, 0.0502, 0.0499), (1, 2, 0)).ok  # below 0.05: needs no partner

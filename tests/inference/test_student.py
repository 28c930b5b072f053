"""load_student: a DICOD student from its checkpoint alone; clear errors for wrong checkpoints."""
import pytest
import torch
from detectron2.config import instantiate

from dicod_d2.config.lazy import load_config
from dicod_d2.errors import CheckpointError
from dicod_d2.inference.student import load_student


def _save_model(config, path):
    cfg = load_config(config)
    if cfg.model.get("distiller", None) is not None:
        cfg.model.distiller = None
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    torch.save({"model": model.state_dict()}, path)
    return model


def test_loads_the_weights_without_a_teacher_file(tmp_path):
    model = _save_model("configs/fashiondet/retinanet/baseline.py", tmp_path / "m.pth")
    student = load_student("configs/fashiondet/retinanet/dicod.py", tmp_path / "m.pth", score_thresh=0.3)
    for key, value in model.state_dict().items():
        assert torch.equal(student.detector.model.state_dict()[key], value), key
    assert student.detector.model.test_score_thresh == 0.3
    assert student.dataset_name == "fashiondet_val" and student.class_names[0] == "T-shirt/top"
    assert student.category_ids == list(range(1, 11)) and student.input_format == "BGR"


def test_missing_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_student("configs/fashiondet/ssd/baseline.py", tmp_path / "nope.pth")
    _save_model("configs/fashiondet/retinanet/baseline.py", tmp_path / "retina.pth")
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_student("configs/fashiondet/ssd/baseline.py", tmp_path / "retina.pth")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="corrupt or truncated"):
        load_student("configs/fashiondet/ssd/baseline.py", tmp_path / "bad.pth")


@pytest.mark.parametrize("student", ["faster_rcnn", "retinanet", "ssd"])
def test_the_control_student_loads_without_a_teacher(tmp_path, student):
    # the label-smoothing control's distiller has no teacher at all (teacher=None)
    model = _save_model(f"configs/fashiondet/{student}/baseline.py", tmp_path / "m.pth")
    loaded = load_student(f"configs/fashiondet/{student}/control.py", tmp_path / "m.pth")
    assert loaded.detector.model.distiller is None
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.detector.model.state_dict()[key], value), key

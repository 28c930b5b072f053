"""FrozenTeacher: frozen, outside the student's module tree, correct input handling."""

import logging

import pytest
import torch
from torch import nn

from dicod_d2.errors import ConfigError
from dicod_d2.teacher import (
    FrozenTeacher,
    TeacherMeta,
    build_classifier,
    build_frozen_teacher,
    file_sha256,
    save_teacher_file,
)

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
NAMES = ["person", "car", "dog"]


def _meta(channel_order="RGB"):
    return TeacherMeta("resnet_tiny", 3, NAMES, 56, channel_order, MEAN, STD, {"top1": 0.9})


@pytest.fixture
def teacher_file(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("resnet_tiny", 3)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 56, 56) * 2 + 1)  # non-default BatchNorm statistics
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, model.eval(), _meta())
    return path


@pytest.fixture
def teacher(teacher_file):
    return FrozenTeacher.from_file(str(teacher_file))


class Student(nn.Module):
    def __init__(self, teacher):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.teacher = teacher

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn)
        return super()._apply(fn, *args, **kwargs)


def test_from_file_logs_path_and_sha256(teacher_file, caplog):
    with caplog.at_level(logging.INFO, logger="dicod_d2"):
        teacher = build_frozen_teacher(str(teacher_file))
    assert teacher.sha256 == file_sha256(teacher_file) and teacher.path == str(teacher_file)
    assert str(teacher_file) in caplog.text and teacher.sha256 in caplog.text


def test_frozen_and_outside_the_student_module_tree(teacher):
    assert not isinstance(teacher, nn.Module)
    assert not any(p.requires_grad for p in teacher.model.parameters())
    student = Student(teacher)
    assert list(student.state_dict()) == ["conv.weight", "conv.bias"]
    assert len(list(student.parameters())) == 2
    student.train()
    assert not teacher.model.training and not any(m.training for m in teacher.model.modules())
    teacher.train()
    assert not any(m.training for m in teacher.model.modules())


def test_batchnorm_statistics_never_move(teacher):
    before = teacher.model.bn1.running_mean.clone()
    x = teacher.normalize(torch.rand(5, 3, 56, 56) * 255, "RGB")
    expected = teacher.logits(x)
    teacher.model.train()  # someone flips the inner model by mistake
    torch.testing.assert_close(teacher.logits(x), expected, rtol=0, atol=0)
    teacher.model.train()
    teacher.features(x, ["stage1"])
    assert torch.equal(teacher.model.bn1.running_mean, before)


def test_logits_no_grad_chunked_and_empty(teacher):
    x = torch.randn(7, 3, 56, 56, requires_grad=True)
    full = teacher.logits(x)
    assert full.shape == (7, 3) and not full.requires_grad
    torch.testing.assert_close(teacher.logits(x, chunk_size=3), full)
    assert teacher.logits(torch.zeros(0, 3, 56, 56)).shape == (0, 3)


def test_features_give_grad_to_input_only(teacher):
    x = torch.randn(2, 3, 56, 56, requires_grad=True)
    feats = teacher.features(x, ["pixels", "stem"])
    assert feats["stem"].shape == (2, 16, 14, 14)
    (feats["stem"].sum() + feats["pixels"].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.model.parameters())


def test_normalize_converts_bgr_red_to_rgb(teacher):
    red_bgr = torch.tensor([0.0, 0.0, 255.0]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    out = teacher.normalize(red_bgr, "BGR")
    expected = [(255 - MEAN[0]) / STD[0], (0 - MEAN[1]) / STD[1], (0 - MEAN[2]) / STD[2]]
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(expected))
    # same order as the teacher: no channel swap
    red_rgb = red_bgr.flip(1)
    torch.testing.assert_close(teacher.normalize(red_rgb, "RGB"), out)
    with pytest.raises(ConfigError, match="input_format must be 'RGB' or 'BGR', got 'YUV'"):
        teacher.normalize(red_rgb, "YUV")


def test_normalize_for_a_bgr_teacher():
    teacher = FrozenTeacher(build_classifier("resnet_tiny", 3), _meta("BGR"))
    red_bgr = torch.tensor([0.0, 0.0, 255.0]).view(1, 3, 1, 1)
    out = teacher.normalize(red_bgr, "BGR").flatten()
    torch.testing.assert_close(
        out, (torch.tensor([0.0, 0.0, 255.0]) - torch.tensor(MEAN)) / torch.tensor(STD)
    )


def test_check_class_names(teacher):
    teacher.check_class_names(["person", "car", "dog"], "dataset 'toy'")
    with pytest.raises(
        ValueError, match=r"another order: #1: teacher 'car' vs 'dog', #2: teacher 'dog' vs 'car'"
    ):
        teacher.check_class_names(["person", "dog", "car"], "dataset 'toy'")
    with pytest.raises(
        ValueError, match=r"3 classes, dataset 'toy' has 2.*only in the teacher: \['dog'\]"
    ):
        teacher.check_class_names(["person", "car"], "dataset 'toy'")
    with pytest.raises(ValueError, match=r"only in dataset 'toy': \['cat'\]"):
        teacher.check_class_names(["person", "car", "cat"], "dataset 'toy'")


def test_to_and_apply_move_the_teacher(teacher):
    x = torch.randn(2, 3, 56, 56)
    expected = teacher.logits(x).double()
    assert teacher.to(torch.float64) is teacher and teacher.dtype == torch.float64
    torch.testing.assert_close(teacher.logits(x.double()), expected)
    teacher.to(torch.float32)
    student = Student(teacher).double()  # nn.Module._apply forwards to the teacher
    assert teacher.dtype == torch.float64 and student.conv.weight.dtype == torch.float64
    assert teacher.device == torch.device("cpu")
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert not teacher.model.training


def test_meta_and_model_must_agree():
    with pytest.raises(ValueError, match="model is 'resnet_tiny' with 5 classes"):
        FrozenTeacher(build_classifier("resnet_tiny", 5), _meta())

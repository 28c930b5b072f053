"""Teacher files: round trip, hashes, and clear failures."""

import hashlib

import pytest
import torch

from dicod_d2.errors import ConfigError, UserError
from dicod_d2.teacher import (
    TeacherFileError,
    TeacherMeta,
    build_classifier,
    file_sha256,
    load_teacher_file,
    read_teacher_file,
    save_teacher_file,
)


def _meta(arch="resnet_tiny", num_classes=3, **overrides):
    fields = dict(
        arch=arch,
        num_classes=num_classes,
        class_names=[f"class{i}" for i in range(num_classes)],
        input_size=56,
        channel_order="RGB",
        pixel_mean=(123.675, 116.28, 103.53),
        pixel_std=(58.395, 57.12, 57.375),
        recipe={"augmentation": "general", "loss": ["ce", "focal"], "top1": 0.5},
    )
    fields.update(overrides)
    return TeacherMeta(**fields)


def _trained_like(arch="resnet_tiny", num_classes=3):
    """A model whose BatchNorm statistics are not the defaults (so buffers matter)."""
    torch.manual_seed(0)
    model = build_classifier(arch, num_classes)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 56, 56) * 3 + 1)
    return model.eval()


def test_round_trip_gives_identical_logits(tmp_path):
    model, meta = _trained_like(), _meta()
    path = tmp_path / "sub" / "teacher.pth"
    save_teacher_file(path, model, meta)
    assert [p.name for p in path.parent.iterdir()] == ["teacher.pth"]  # no temporary left behind
    loaded, loaded_meta = load_teacher_file(path)
    assert loaded_meta == meta and loaded.arch == "resnet_tiny"
    x = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))
    _, _, sha = read_teacher_file(path)
    assert sha == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_weights_of_another_arch_fail_naming_both(tmp_path):
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, build_classifier("resnet50", 3), _meta("resnet50"))
    payload = torch.load(path, weights_only=True)
    payload["meta"]["arch"] = "resnet18"
    torch.save(payload, path)
    with pytest.raises(
        TeacherFileError,
        match=r"declares arch 'resnet18' but its keys look like arch 'resnet50'.*unexpected keys",
    ):
        load_teacher_file(path)


def test_other_number_of_classes_fails_naming_the_head(tmp_path):
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, build_classifier("resnet_tiny", 5), _meta(num_classes=5))
    payload = torch.load(path, weights_only=True)
    payload["meta"].update(num_classes=3, class_names=["a", "b", "c"])
    torch.save(payload, path)
    with pytest.raises(TeacherFileError, match=r"another number of classes.*fc.weight: \(5, 128\)"):
        load_teacher_file(path)


def test_truncated_file_fails_clearly(tmp_path):
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, build_classifier("resnet_tiny", 3), _meta())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TeacherFileError, match="truncated, corrupt or not a torch file"):
        load_teacher_file(path)


def test_plain_state_dict_is_not_a_teacher_file(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(build_classifier("resnet_tiny", 3).state_dict(), path)
    with pytest.raises(TeacherFileError, match="not a dicod_d2 teacher file.*plain state dict"):
        load_teacher_file(path)


def test_missing_file_and_unknown_arch(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher file .*nope.pth' does not exist"):
        load_teacher_file(tmp_path / "nope.pth")
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, build_classifier("resnet_tiny", 3), _meta())
    payload = torch.load(path, weights_only=True)
    payload["meta"]["arch"] = "vgg16"
    torch.save(payload, path)
    with pytest.raises(TeacherFileError, match="unknown arch 'vgg16'"):
        load_teacher_file(path)


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, build_classifier("resnet_tiny", 3), _meta())
    payload = torch.load(path, weights_only=True)
    payload["meta"]["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(TeacherFileError, match="format version 99"):
        load_teacher_file(path)


def test_meta_validation_and_model_meta_agreement(tmp_path):
    # the values come from a teacher-training config: ConfigError (a file's are a TeacherFileError)
    with pytest.raises(ConfigError, match="invalid teacher meta: channel_order must be 'RGB' or 'BGR'"):
        _meta(channel_order="GBR")
    with pytest.raises(ConfigError, match="2 class names for num_classes=3"):
        _meta(class_names=["a", "b"])
    with pytest.raises(ConfigError, match="recipe must be"):
        _meta(recipe={"dataset": object()})
    with pytest.raises(ConfigError, match=r"pixel_std must be positive, got \(1\.0, 0\.0, 1\.0\)"):
        _meta(pixel_std=(1.0, 0.0, 1.0))
    # a model and a meta of our own code that disagree: a bug
    with pytest.raises(ValueError, match="model is 'resnet_tiny' with 4 classes") as info:
        save_teacher_file(tmp_path / "t.pth", build_classifier("resnet_tiny", 4), _meta())
    assert not isinstance(info.value, UserError)
    assert not (tmp_path / "t.pth").exists()

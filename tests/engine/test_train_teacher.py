"""Teacher training end to end on the tiny FashionDet: losses, evaluation, the teacher file, resume."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import uuid

import pytest
import torch
import torchvision
from _helpers import REPO, TINY_OVERRIDES
from detectron2.utils.events import EventStorage
from fvcore.nn import sigmoid_focal_loss

from dicod_d2.cli import run_cli
from dicod_d2.config.lazy import load_config
from dicod_d2.data.datasets import register_fashiondet, thing_classes
from dicod_d2.data.object_crops import ObjectCropMapper, load_object_records
from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.teacher_export import load_classifier_weights
from dicod_d2.modeling.classification import CropClassifier
from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.teacher import (
    IMAGENET_PIXEL_MEAN,
    IMAGENET_PIXEL_STD,
    SHIPPED_WEIGHTS,
    FrozenTeacher,
    TeacherFileError,
    TeacherMeta,
    build_classifier,
    load_teacher_file,
    save_teacher_file,
)

CONFIG = str(REPO / "configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py")
_spec = importlib.util.spec_from_file_location("train_teacher", REPO / "tools/train_teacher.py")
train_teacher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_teacher)


def _run(out, *overrides, resume=False, eval_only=False) -> int:
    argv = ["--config-file", CONFIG]
    argv += ["--resume"] if resume else []
    argv += ["--eval-only"] if eval_only else []
    argv += TINY_OVERRIDES + [f"train.output_dir={out}", "train.checkpointer.period=100"]
    return run_cli(train_teacher.main, "test", argv + list(overrides))


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def ce_fl_run(tiny_fashiondet, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "ce_fl"
    assert _run(out, "train.max_iter=3", "train.eval_period=0") == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("losses", [["ce"], ["focal"]])
def test_training_with_each_loss(tiny_fashiondet, tmp_path, losses):
    out = tmp_path / "run"
    assert _run(out, "train.max_iter=3", "train.eval_period=0", f"model.losses={losses}") == 0
    logged = [m for m in _metrics(out) if "total_loss" in m]
    assert [m["iteration"] for m in logged] == [0, 1, 2]
    # detectron2 logs the single terms only when there are several; total_loss is the one term
    assert not any(k.startswith("loss_") for k in logged[-1]) and logged[-1]["total_loss"] > 0
    meta = load_teacher_file(out / "teacher.pth")[1]
    assert meta.recipe["losses"] == losses


@pytest.mark.slow
def test_ce_fl_run_evaluates_and_writes_the_teacher_file(ce_fl_run):
    metrics = _metrics(ce_fl_run)
    assert {"loss_ce", "loss_focal"} <= set(metrics[-2])
    top1 = [m["classification/top1"] for m in metrics if "classification/top1" in m]
    assert len(top1) == 1 and 0.0 <= top1[0] <= 100.0
    model, meta = load_teacher_file(ce_fl_run / "teacher.pth")
    assert meta.arch == "resnet_tiny" and meta.input_size == 56 and meta.channel_order == "RGB"
    assert meta.class_names == thing_classes("fashiondet_tiny_train")
    assert meta.recipe["top1"] == pytest.approx(top1[0], abs=1e-3)
    assert meta.recipe["augmentation"] == "general" and meta.recipe["iterations"] == 3
    assert (ce_fl_run / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_eval_only_from_teacher_file_and_from_checkpoint(ce_fl_run, tmp_path):
    recipe_top1 = load_teacher_file(ce_fl_run / "teacher.pth")[1].recipe["top1"]
    for i, ckpt in enumerate(("teacher.pth", "model_final.pth")):
        out = tmp_path / f"eval{i}"
        argv = ["--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES, f"train.output_dir={out}",
                f"train.init_checkpoint={ce_fl_run / ckpt}"]
        results = train_teacher.main(default_argument_parser().parse_args(argv))["classification"]
        assert results["top1"] == pytest.approx(recipe_top1, abs=1e-3)
        assert {f"top1-{c}" for c in thing_classes("fashiondet_tiny_val")} <= set(results)
        assert (out / "confusion_matrix.png").is_file()
        assert len((out / "per_class_accuracy.csv").read_text().splitlines()) == 11
        summary = json.loads((out / "classification_eval.json").read_text())
        assert summary["classification"]["top1"] == pytest.approx(results["top1"])
        assert summary["checkpoint"] == str(ce_fl_run / ckpt) and summary["datasets"] == ["fashiondet_tiny_val"]
        assert summary["parameters"] > 0 and summary["input_size"] > 0


@pytest.mark.slow
def test_eval_only_keeps_the_normalisation_of_shipped_init_weights(tiny_fashiondet, tmp_path):
    """An EfficientNet-Lite teacher normalises with (x - 127) / 128; --eval-only of its checkpoint
    must evaluate it that way too (it once fell back to ImageNet's mean/std: a lower top-1)."""
    lite = ["model.arch=efficientnet_lite0", "model.init_weights=efficientnet_lite0_imagenet",
            "model.input_size=32"]
    out = tmp_path / "run"
    assert _run(out, "train.max_iter=2", "train.eval_period=0", *lite) == 0
    meta = load_teacher_file(out / "teacher.pth")[1]
    assert (meta.pixel_mean, meta.pixel_std) == ((127.0,) * 3, (128.0,) * 3)
    argv = ["--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES, *lite,
            f"train.output_dir={tmp_path / 'eval'}", f"train.init_checkpoint={out / 'teacher.pth'}"]
    results = train_teacher.main(default_argument_parser().parse_args(argv))["classification"]
    assert results["top1"] == pytest.approx(meta.recipe["top1"], abs=1e-3)


@pytest.mark.slow
def test_unreadable_images_are_skipped_counted_and_logged(ce_fl_run, tiny_fashiondet, tmp_path):
    """Two val images that cannot be read: evaluation goes on without them and logs the count."""
    coco = json.loads((tiny_fashiondet / "annotations/instances_val.json").read_text())
    images = tmp_path / "images"
    shutil.copytree(tiny_fashiondet / "val", images)
    for record in coco["images"][:2]:
        (images / record["file_name"]).write_bytes(b"truncated")
    (tmp_path / "val.json").write_text(json.dumps(coco))
    name = f"fashiondet_broken_{uuid.uuid4().hex[:8]}"
    register_fashiondet(name, tmp_path / "val.json", images)
    broken = {r["id"] for r in coco["images"][:2]}
    skipped = sum(a["image_id"] in broken for a in coco["annotations"])

    out = tmp_path / "eval"
    argv = ["--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES, f"train.output_dir={out}",
            f"train.init_checkpoint={ce_fl_run / 'teacher.pth'}",
            f"dataloader.test.dataset.names={name}"]
    assert run_cli(train_teacher.main, "test", argv) == 0
    log = (out / "log.txt").read_text()
    assert "2 unreadable images were skipped" in log
    assert log.count("Skipping unreadable image") == 2
    rows = (out / "per_class_accuracy.csv").read_text().splitlines()[1:]
    crops = sum(int(row.split(",")[1]) for row in rows)
    total = sum(1 for a in coco["annotations"] if not a.get("iscrowd"))
    assert crops == total - skipped > 0


def test_eval_only_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    argv = ["--config-file", CONFIG, "--eval-only", f"train.output_dir={tmp_path}"]
    assert run_cli(train_teacher.main, "test", argv) == 1
    assert "--eval-only needs train.init_checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_teacher_file_serves_a_student(ce_fl_run):
    """A student takes the file: same logits as in training, class check, a DICOD step."""
    teacher = FrozenTeacher.from_file(str(ce_fl_run / "teacher.pth"))
    classes = thing_classes("fashiondet_tiny_train")
    teacher.check_class_names(classes, "dataset 'fashiondet_tiny_train'")
    with pytest.raises(ValueError, match="another order"):
        teacher.check_class_names(classes[::-1], "a reversed dataset")

    # the teacher file's normalisation reproduces the training model's logits on BGR crops
    model = CropClassifier("resnet_tiny", classes, input_size=56, input_format="BGR")
    load_classifier_weights(model, str(ce_fl_run / "teacher.pth"))
    item = ObjectCropMapper([], crop_size=56, image_format="BGR")(
        load_object_records("fashiondet_tiny_val")[0]
    )
    with torch.no_grad():
        expected = model.eval()([item])[0]["logits"]
    got = teacher.logits(teacher.normalize(item["crops"], "BGR"))
    torch.testing.assert_close(got, expected)

    distiller = DICODDistiller(teacher, normalizer="positives", class_names=classes, input_format="BGR")
    images = torch.rand(2, 3, 96, 96) * 255
    gt = [torch.tensor([[4.0, 6.0, 60.0, 70.0]]), torch.tensor([[10.0, 10.0, 50.0, 30.0], [0, 40, 30, 90]])]
    logits = torch.randn(3, len(classes) + 1, requires_grad=True)
    pred = (torch.cat(gt) + torch.tensor([2.0, -1.0, 3.0, 1.0])).requires_grad_(True)
    losses = distiller.losses(
        images, gt, logits, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), pred, mode="softmax"
    )
    assert set(losses) == {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert logits.grad.abs().sum() > 0 and pred.grad.abs().sum() > 0


@pytest.mark.slow
def test_resume_restores_iteration_optimizer_and_scheduler(tiny_fashiondet, tmp_path):
    schedule = ["train.max_iter=6", "train.eval_period=0", "train.checkpointer.period=3",
                "lr_multiplier.scheduler.milestones=[4]", "lr_multiplier.scheduler.num_updates=6"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert _run(full, *schedule) == 0
    resumed.mkdir()
    shutil.copy(full / "model_0000002.pth", resumed / "model_0000002.pth")
    (resumed / "last_checkpoint").write_text("model_0000002.pth")
    assert _run(resumed, *schedule, resume=True) == 0

    iterations = [m["iteration"] for m in _metrics(resumed) if "total_loss" in m]
    assert iterations == [3, 4, 5], "the resumed run continues after the checkpoint's iteration"
    a = torch.load(full / "model_final.pth", weights_only=False)["trainer"]
    b = torch.load(resumed / "model_final.pth", weights_only=False)["trainer"]
    assert a["iteration"] == b["iteration"] == 5
    assert a["hooks"]["LRScheduler"] == b["hooks"]["LRScheduler"]  # last_epoch and base lrs
    # exact resume: the same losses and weights as the uninterrupted run
    losses = [{m["iteration"]: m["total_loss"] for m in _metrics(out) if "total_loss" in m} for out in (full, resumed)]
    assert losses[1] == {i: losses[0][i] for i in (3, 4, 5)}
    weights = [torch.load(out / "model_final.pth", weights_only=False)["model"] for out in (full, resumed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    steps = [s["step"].item() for s in b["optimizer"]["state"].values()]
    assert steps and all(s == 6 for s in steps), "Adam's step counts continue from the checkpoint"
    lrs = {m["iteration"]: m["lr"] for m in _metrics(resumed) if "lr" in m}
    base_lr = load_config(CONFIG).optimizer.lr
    assert lrs[3] == pytest.approx(base_lr) and lrs[5] == pytest.approx(base_lr / 10)


# ----------------------------------------------------------------------------- fast, no training
def _file(tmp_path, arch="resnet_tiny", classes=("a", "b", "c")):
    path = tmp_path / f"{arch}.pth"
    meta = TeacherMeta(arch, len(classes), list(classes), 32, "RGB", (0, 0, 0), (1, 1, 1))
    save_teacher_file(path, build_classifier(arch, len(classes)), meta)
    return path


def test_teacher_file_of_another_arch_is_refused(tmp_path):
    model = CropClassifier("resnet18", ["a", "b", "c"], input_size=32)
    with pytest.raises(TeacherFileError, match="holds a 'resnet_tiny'.*model.arch=resnet_tiny"):
        load_classifier_weights(model, str(_file(tmp_path)))


def test_checkpoint_of_another_arch_is_refused(tmp_path):
    other = CropClassifier("resnet_tiny", ["a", "b", "c"], input_size=32)
    torch.save({"model": other.state_dict()}, tmp_path / "model_final.pth")
    model = CropClassifier("resnet18", ["a", "b", "c"], input_size=32)
    with pytest.raises(ValueError, match="look like arch 'resnet_tiny'"):
        load_classifier_weights(model, str(tmp_path / "model_final.pth"))


def test_teacher_file_with_other_classes_is_refused(tmp_path):
    model = CropClassifier("resnet_tiny", ["a", "b", "x"], input_size=32)
    with pytest.raises(ValueError, match="only in the teacher: \\['c'\\]"):
        load_classifier_weights(model, str(_file(tmp_path)))


def test_initial_weights_scratch_torchvision_file_and_efficientnet_lite0(tmp_path):
    """The three starts of a teacher: scratch, a local torchvision file, EfficientNet-Lite0's
    offline ImageNet weights; each with the normalisation its weights expect, new C-way head."""
    scratch = CropClassifier("resnet_tiny", ["a", "b", "c"], input_size=32)
    assert scratch.teacher_meta().pixel_mean == IMAGENET_PIXEL_MEAN

    imagenet = torchvision.models.resnet18(weights=None)  # stands in for resnet18-f37072fd.pth
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    model = CropClassifier("resnet18", ["a", "b", "c"], input_size=32,
                           init_weights=str(tmp_path / "resnet18.pth"))
    torch.testing.assert_close(model.classifier.layer4[1].conv2.weight,
                               imagenet.layer4[1].conv2.weight)
    assert model.classifier.fc.weight.shape == (3, 512)
    meta = model.teacher_meta()
    assert meta.channel_order == "RGB"
    assert (meta.pixel_mean, meta.pixel_std) == (IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD)

    name = "efficientnet_lite0_imagenet"
    lite = CropClassifier("efficientnet_lite0", ["a", "b", "c"], input_size=56, init_weights=name)
    shipped = torch.load(SHIPPED_WEIGHTS[name][1](), map_location="cpu", weights_only=True)
    torch.testing.assert_close(lite.classifier._conv_stem.weight, shipped["_conv_stem.weight"])
    assert lite.classifier._fc.weight.shape[0] == 3
    meta = lite.teacher_meta()
    assert meta.channel_order == "RGB"
    assert (meta.pixel_mean, meta.pixel_std) == ((127.0,) * 3, (128.0,) * 3)


def test_losses_and_empty_batches():
    torch.manual_seed(0)
    model = CropClassifier("resnet_tiny", ["a", "b", "c"], input_size=32, losses=("ce", "focal"))
    crops = torch.rand(4, 3, 32, 32) * 255
    labels = torch.tensor([0, 2, 1, 2])
    batch = [{"crops": crops[:3], "labels": labels[:3]}, {"crops": crops[3:], "labels": labels[3:]},
             {"crops": crops[:0], "labels": labels[:0], "unreadable": True}]
    with EventStorage() as storage:
        losses = model.train()(batch)
        with torch.no_grad():  # training-mode BatchNorm: the same batch gives the same logits
            logits = model.classifier(model.normalize(crops))
        assert storage.latest()["data/unreadable_images"][0] == 1
    torch.testing.assert_close(losses["loss_ce"], torch.nn.functional.cross_entropy(logits, labels))
    targets = torch.nn.functional.one_hot(labels, 3).float()
    focal = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="sum") / 4
    torch.testing.assert_close(losses["loss_focal"], focal)

    with EventStorage():
        empty = model.train()([batch[2]])
    sum(empty.values()).backward()  # zero, but connected to the graph (DDP needs every parameter)
    assert all(v.item() == 0 for v in empty.values())


def test_normalisation_follows_the_channel_orders():
    model = CropClassifier("resnet_tiny", ["a", "b"], input_size=8, pixel_mean=(1, 2, 3),
                           pixel_std=(2, 2, 2), channel_order="RGB", input_format="BGR")
    bgr = torch.tensor([30.0, 20.0, 10.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    torch.testing.assert_close(model.normalize(bgr)[0, :, 0, 0], torch.tensor([4.5, 9.0, 13.5]))
    assert model.teacher_meta().pixel_mean == (1.0, 2.0, 3.0)


TEACHER_CONFIGS = sorted(
    p for p in (REPO / "configs/teacher").rglob("*.py") if not p.name.startswith("_")
)


@pytest.mark.parametrize("path", TEACHER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_teacher_configs_match_their_names(path):
    """Table S1's grid: <arch>_<size>_<augmentation>_<losses>.py; COCO runs the paper's schedule."""
    name = re.fullmatch(r"(?P<arch>.+)_(?P<size>\d+)_(?P<aug>general|ssd)_(?P<loss>ce_fl|ce|fl)", path.stem)
    assert name, f"{path.name} does not follow <arch>_<size>_<augmentation>_<losses>.py"
    cfg = load_config(path)
    assert cfg.model.arch == name["arch"] and cfg.model.input_size == int(name["size"])
    expected = {"ce": ["ce"], "fl": ["focal"], "ce_fl": ["ce", "focal"]}[name["loss"]]
    assert list(cfg.model.losses) == expected
    assert cfg.train.extra_hooks[0].recipe.augmentation == name["aug"]
    assert cfg.dataloader.train.mapper.image_format == ("RGB" if name["aug"] == "ssd" else "BGR")
    if path.parent.name == "coco":
        assert cfg.optimizer.lr == 1e-4
        batch = cfg.dataloader.train.total_batch_size
        assert cfg.train.max_iter * batch / 117266 == pytest.approx(90, abs=0.01)
        step = cfg.lr_multiplier.scheduler.milestones[0] * batch / 117266
        assert step == pytest.approx(50, abs=0.01)

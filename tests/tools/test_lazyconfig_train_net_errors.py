"""Bad input to tools/lazyconfig_train_net.py ends with one clear message and writes nothing."""
import json
import socket

import pytest
from _helpers import REPO, TINY_OVERRIDES, copy_as_own_coco, one_error_line, run_tool

from dicod_d2.cli import run_cli
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
from dicod_d2.engine.train_loop import main
from dicod_d2.teacher import write_random_teacher
from dicod_d2.utils.output_lock import LOCK_NAME, OutputFolderLock

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")


def _cli(capsys, *argv):
    """Run the tool in this process; return its exit code and the last line it printed to stderr
    (earlier lines are library warnings, e.g. torch's about CUDA)."""
    rc = run_cli(main, "test", list(argv))
    return rc, (capsys.readouterr().err.strip().splitlines() or [""])[-1]


def test_missing_config_file(capsys):
    rc, err = _cli(capsys, "--config-file", "configs/fashiondet/faster_rcnn/baseline_typo.py")
    assert rc == 1
    assert "config file 'configs/fashiondet/faster_rcnn/baseline_typo.py' does not exist" in err
    assert "configs/fashiondet/faster_rcnn/baseline.py" in err  # the suggestion


def test_bad_override_key(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, "train.max_itr=3", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "no key 'train.max_itr'" in err and "train.max_iter" in err
    assert not (tmp_path / "o").exists()


def test_missing_dataset_folder(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES,
                   "dataloader.train.dataset.names=fashiondet_quick_train",
                   "train.max_iter=1", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "instances_train.json" in err and "make_fashiondet.py --preset quick" in err
    assert not list((tmp_path / "o").glob("*.pth"))


def test_corrupt_checkpoint(capsys, tmp_path, tiny_fashiondet):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    rc, err = _cli(capsys, "--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES,
                   f"train.init_checkpoint={bad}", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert f"checkpoint '{bad}' is corrupt or truncated" in err


def test_missing_checkpoint(capsys, tmp_path, tiny_fashiondet):
    rc, err = _cli(capsys, "--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES,
                   f"train.init_checkpoint={tmp_path}/nope.pth", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "nope.pth' does not exist" in err


@pytest.mark.parametrize("kind", ["under_a_file", "read_only_fs"])
def test_unwritable_output_folder(capsys, tmp_path, kind):
    if kind == "under_a_file":
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "run"
    else:
        out = "/proc/dicod-d2-run"
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES, f"train.output_dir={out}")
    assert rc == 1
    assert f"output folder '{out}'" in err and "train.output_dir=DIR" in err


def test_override_of_the_wrong_type_fails_before_anything_is_built(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, "train.max_iter=abc", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert err == ("error: override 'train.max_iter=abc': 'train.max_iter' is an int in the config "
                   "(600), got 'abc' (str). Write a value of that type.")
    assert not (tmp_path / "o").exists()


def test_option_after_the_overrides(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, f"train.output_dir={tmp_path}/o", "--resume")
    assert rc == 1
    assert "option '--resume' comes after the key=value overrides" in err


def test_eval_only_without_a_checkpoint(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, "--eval-only", *TINY_OVERRIDES,
                   f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "--eval-only needs train.init_checkpoint=" in err and "random" in err
    assert not (tmp_path / "o").exists()


def test_teacher_file_as_the_student_checkpoint(capsys, tmp_path):
    teacher = write_random_teacher(tmp_path / "teacher.pth", FASHION_MNIST_CLASSES, input_size=56)
    for mode in (["--eval-only"], []):
        rc, err = _cli(capsys, "--config-file", CONFIG, *mode, *TINY_OVERRIDES,
                       f"train.init_checkpoint={teacher}", f"train.output_dir={tmp_path}/o")
        assert rc == 1
        assert f"'{teacher}' is a teacher file, not a detector checkpoint" in err
        assert "model.distiller.teacher.path" in err


def test_unregistered_dataset(capsys, tmp_path):
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES,
                   "dataloader.test.dataset.names=fashiondet_tiny_vall", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "dataset 'fashiondet_tiny_vall' is not registered. Did you mean fashiondet_tiny_val" in err
    assert "--register-coco NAME JSON IMAGE_DIR" in err


def test_negative_loss_weight(capsys, tmp_path, tiny_fashiondet):
    teacher = write_random_teacher(tmp_path / "teacher.pth", FASHION_MNIST_CLASSES, input_size=56)
    rc, err = _cli(capsys, "--config-file", "configs/fashiondet/faster_rcnn/dicod.py", *TINY_OVERRIDES,
                   f"model.distiller.teacher.path={teacher}", "model.distiller.kd_cls_weight=-0.1",
                   f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert "loss weights must be >= 0" in err and "kd_cls_weight=-0.1" in err


def test_bad_images_of_an_own_dataset_in_one_line(capsys, tmp_path, tiny_fashiondet):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "own")
    missing = sorted(own["images"].glob("train_*.jpg"))[0]
    missing.unlink()
    rc, err = _cli(capsys, "--config-file", CONFIG, "--register-coco", "mine", str(own["train"]),
                   str(own["images"]), *TINY_OVERRIDES, "dataloader.train.dataset.names=mine",
                   "train.max_iter=1", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert err.startswith("error: dataset 'mine': 1 of 48 images cannot be used")
    assert f"'{missing}': missing" in err


def test_dataset_with_another_number_of_classes(capsys, tmp_path, tiny_fashiondet):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "own")
    coco = json.loads(own["val"].read_text())
    coco["categories"] = coco["categories"][:3]
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] <= 3]
    own["val"].write_text(json.dumps(coco))
    rc, err = _cli(capsys, "--config-file", CONFIG, "--register-coco", "three", str(own["val"]),
                   str(own["images"]), *TINY_OVERRIDES, "dataloader.train.dataset.names=three",
                   "dataloader.test.dataset.names=three", "train.max_iter=1", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert err == ("error: model.roi_heads.num_classes=10 but dataset 'three' has 3 classes "
                   "(T-shirt/top, Trouser, Pullover): set model.roi_heads.num_classes=3")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("config, override, message", [
    ("ssd/baseline.py", "model.backbone.size=400",
     "error: model.backbone.size=400: SSD's VGG16 is defined for 300 or 512"),
    ("ssd/baseline.py", "model.backbone.width=0",
     "error: model.backbone.width=0: must be > 0"),
    ("ssd/baseline.py", "model.anchor_generator.ratio_range=[0.9,0.15]",
     "error: model.anchor_generator.ratio_range=(0.9, 0.15): must be (lo, hi) with 0 < lo < hi"),
    ("ssd/baseline.py", "model.head.num_anchors=[4,4,4,4,4,4]",
     "error: the anchor generator has [4, 6, 6, 6, 4, 4] anchors per location but "
     "model.head.num_anchors=[4, 4, 4, 4, 4, 4]"),
    ("ssd/baseline.py", "model.input_format=RGBA",
     "error: model.input_format='RGBA': must be 'BGR' or 'RGB'"),
    ("faster_rcnn/baseline.py", "model.backbone.width_divisor=3",
     "error: model.backbone.width_divisor=3: must be a positive integer dividing 64"),
    ("retinanet/baseline.py", "model.backbone.depth=19",
     "error: model.backbone.depth=19: ResNet depth must be one of"),
])
def test_bad_model_value_in_one_line(capsys, tmp_path, tiny_fashiondet, config, override, message):
    """A model value the modules refuse, given on the command line: one ``error:`` line that names
    the option (it was a ValueError traceback)."""
    rc, err = _cli(capsys, "--config-file", f"configs/fashiondet/{config}", *TINY_OVERRIDES, override,
                   f"train.output_dir={tmp_path}/o")
    assert rc == 1 and err.startswith(message), err


@pytest.mark.parametrize("config, override, message", [
    ("faster_rcnn/dicod.py", "model.distiller.temperature=-1", "error: temperature must be > 0, got -1."),
    ("ssd/baseline.py", "model.backbone.weights={bad}", "error: cannot read VGG16 weight file '{bad}' ("),
])
def test_the_script_reports_a_bad_config_value_in_one_line(tmp_path, tiny_fashiondet, config, override, message):
    """The real script, in a child process, given a bad distillation value or a weight file torch
    cannot read: exit 1, one ``error:`` line ending stderr, no traceback, nothing trained."""
    teacher = write_random_teacher(tmp_path / "teacher.pth", FASHION_MNIST_CLASSES, input_size=56)
    bad = tmp_path / "vgg16.pth"
    bad.write_bytes(b"PK\x03\x04 cut short")
    distiller = [f"model.distiller.teacher.path={teacher}"] if "dicod" in config else []
    run = run_tool("lazyconfig_train_net.py", "--config-file", f"configs/fashiondet/{config}",
                   *TINY_OVERRIDES, *distiller, override.format(bad=bad), "train.max_iter=1",
                   f"train.output_dir={tmp_path}/o")
    assert one_error_line(run).startswith(message.format(bad=bad))
    assert not list((tmp_path / "o").glob("*.pth"))


def _save_untrained(config, path):
    """Save an untrained model of ``config`` (no distiller) as a detectron2 checkpoint."""
    import torch
    from detectron2.config import instantiate

    from dicod_d2.config.lazy import drop_distiller, load_config

    cfg = load_config(config)
    drop_distiller(cfg)
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return path


def test_another_models_checkpoint_is_refused(capsys, tmp_path, tiny_fashiondet):
    retina = _save_untrained("configs/fashiondet/retinanet/baseline.py", tmp_path / "retina.pth")
    for mode in (["--eval-only"], []):
        rc, err = _cli(capsys, "--config-file", CONFIG, *mode, *TINY_OVERRIDES, "train.max_iter=1",
                       f"train.init_checkpoint={retina}", f"train.output_dir={tmp_path}/o")
        assert rc == 1
        assert err.startswith(f"error: checkpoint '{retina}' does not fit the model") and "weights missing" in err
        assert not list((tmp_path / "o").glob("*.pth")) and not (tmp_path / "o/coco_instances_results.json").exists()
    assert "train.init_checkpoint_partial=True" in err  # training: the partial load is the way out


def test_a_partial_load_is_explicit_and_logged(capsys, tmp_path, tiny_fashiondet):
    retina = _save_untrained("configs/fashiondet/retinanet/baseline.py", tmp_path / "retina.pth")
    rc, _ = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES, "train.max_iter=1", "train.eval_period=0",
                 "dataloader.test.dataset.names=fashiondet_tiny_train", "dataloader.evaluator=null",
                 f"train.init_checkpoint={retina}", "train.init_checkpoint_partial=True",
                 f"train.output_dir={tmp_path}/o")
    assert rc == 0
    log = (tmp_path / "o/log.txt").read_text()
    assert f"Partial load of {retina}:" in log and "keep their initial values" in log
    assert (tmp_path / "o/model_final.pth").is_file()


@pytest.mark.parametrize("max_iter", [0, -5])
def test_no_iterations_to_train(capsys, tmp_path, max_iter):
    rc, err = _cli(capsys, "--config-file", CONFIG, *TINY_OVERRIDES, f"train.max_iter={max_iter}",
                   f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert err.startswith(f"error: train.max_iter={max_iter}: give a positive number of iterations")
    assert not (tmp_path / "o").exists()


def test_resume_past_max_iter(capsys, tmp_path, tiny_fashiondet):
    import torch

    out = tmp_path / "o"
    out.mkdir()
    torch.save({"model": {}, "iteration": 9}, out / "model_0000009.pth")
    (out / "last_checkpoint").write_text("model_0000009.pth")
    before = sorted(p.name for p in out.iterdir())
    rc, err = _cli(capsys, "--config-file", CONFIG, "--resume", *TINY_OVERRIDES, "train.max_iter=5",
                   f"train.output_dir={out}")
    assert rc == 1
    assert err == (f"error: --resume: the checkpoint of '{out}' finished iteration 10, past "
                   "train.max_iter=5: give train.max_iter above 10 to train further, or --eval-only "
                   "with its checkpoint to evaluate it")
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_held_output_folder_stops_the_second_run(tmp_path, tiny_fashiondet):
    import subprocess
    import sys

    out = tmp_path / "o"
    with OutputFolderLock(out):  # held by this process, as by a running training
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (out / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                     "started": "2026-01-01 00:00:00"}))
            run = run_tool("lazyconfig_train_net.py", "--config-file", CONFIG, *TINY_OVERRIDES,
                           "train.max_iter=1", f"train.output_dir={out}")
        finally:
            holder.kill()
            holder.wait()
        assert f"is in use by another run (process {holder.pid} on this host" in one_error_line(run)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_eval_only_of_a_dicod_config_needs_no_teacher_file(capsys, tmp_path, tiny_fashiondet):
    baseline = _save_untrained(CONFIG, tmp_path / "model.pth")
    rc, err = _cli(capsys, "--config-file", "configs/fashiondet/faster_rcnn/dicod.py", "--eval-only",
                   *TINY_OVERRIDES, f"model.distiller.teacher.path={tmp_path}/no_teacher.pth",
                   f"train.init_checkpoint={baseline}", f"train.output_dir={tmp_path}/o")
    assert rc == 0, err
    assert (tmp_path / "o/coco_instances_results.json").is_file()


def _teacher_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_teacher", REPO / "tools/train_teacher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


TOOLS = {"student": (main, CONFIG), "teacher": (None, "configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py")}


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("case, message", [
    ("not_json", "is not a JSON file (Expecting value: line 1 column 1 (char 0))"),
    ("unknown_category", "has annotations whose category_id (99) is not the id of an entry of its 'categories'"),
    ("no_annotations", "has no annotations: nothing to train on or evaluate"),
])
def test_bad_own_coco_json_in_one_line(capsys, tmp_path, tiny_fashiondet, tool, case, message):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "own")
    data = json.loads(own["train"].read_text())
    if case == "not_json":
        own["train"].write_text("images,annotations\n1,2\n")
    else:
        data["annotations"] = [] if case == "no_annotations" else [{**data["annotations"][0], "category_id": 99}]
        own["train"].write_text(json.dumps(data))
    tool_main, config = TOOLS[tool]
    name = f"mine_{tool}_{case}"  # a name is registered once per process
    argv = ["--config-file", config, "--register-coco", name, str(own["train"]), str(own["images"]),
            *TINY_OVERRIDES, f"dataloader.train.dataset.names={name}", "train.max_iter=1",
            f"train.output_dir={tmp_path}/o"]
    rc = run_cli(tool_main or _teacher_main(), "test", argv)
    err = (capsys.readouterr().err.strip().splitlines() or [""])[-1]
    assert rc == 1
    assert err.startswith(f"error: annotation file '{own['train']}' of dataset '{name}' {message}"), err


def test_register_coco_with_two_values(capsys, tmp_path, tiny_fashiondet):
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "own")
    rc, err = _cli(capsys, "--config-file", CONFIG, "--register-coco", "mine", str(own["train"]),
                   "train.max_iter=1", f"train.output_dir={tmp_path}/o")
    assert rc == 1
    assert err.startswith("error: --register-coco takes three values, NAME JSON IMAGE_DIR; 'train.max_iter=1' "
                          "looks like a key=value override")

"""The teacher of a DICOD Faster R-CNN stays frozen and outside the student in real training runs:
eval mode through ``model.train()`` and detectron2's EvalHook, no optimizer entry, no checkpoint key,
not seen by DDP (two gloo processes)."""
import sys
from pathlib import Path

import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES
from detectron2.config import instantiate

from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.launch import launch
from dicod_d2.engine.train_loop import main
from dicod_d2.teacher import read_teacher_file

sys.path.insert(0, str(Path(__file__).parent))  # test_rcnn_student's helpers
sys.path.insert(0, str(REPO / "tests/engine"))  # the launch worker; spawned children inherit sys.path
from _dist_worker import train_and_dump  # noqa: E402
from test_rcnn_student import student_config, write_teacher_file  # noqa: E402

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/dicod.py")


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return write_teacher_file(tmp_path_factory.mktemp("teacher") / "teacher.pth")


def _baseline_model():
    return instantiate(student_config("baseline", None).model)


def test_model_train_leaves_the_teacher_in_eval(teacher_path):
    model = instantiate(student_config("dicod", teacher_path).model)
    model.train()
    assert model.training and all(m.training for m in model.modules())
    teacher = model.distiller.teacher.model
    assert not any(m.training for m in teacher.modules())
    assert not any(p is q for p in model.parameters() for q in teacher.parameters())


@pytest.mark.slow
def test_training_run_with_evaluation_keeps_teacher_frozen_and_out_of_optimizer_and_checkpoint(
    tiny_fashiondet, teacher_path, tmp_path
):
    out = tmp_path / "run"
    args = default_argument_parser().parse_args([
        "--config-file", CONFIG, *TINY_OVERRIDES, f"model.distiller.teacher.path={teacher_path}",
        f"train.output_dir={out}", "train.max_iter=2", "train.eval_period=2", "train.checkpointer.period=100",
    ])
    trainer = main(args)
    model = trainer.model
    # detectron2's EvalHook ran (inference_context: model.eval() then model.train()) ...
    assert (out / "coco_instances_results.json").is_file()
    metrics = (out / "metrics.json").read_text()
    assert all(name in metrics for name in ("loss_kd_cls", "loss_loc_pix", "loss_kd_loc"))
    assert model.training
    # ... and the teacher is still in eval mode, without gradients, with the file's weights and BN statistics
    teacher = model.distiller.teacher.model
    assert not any(m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    file_model, _, _ = read_teacher_file(teacher_path)
    for k, v in file_model.state_dict().items():
        assert torch.equal(teacher.state_dict()[k], v), k

    # the optimizer (config's get_default_optimizer_params) holds exactly the student's parameters
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    assert not in_optimizer & {id(p) for p in teacher.parameters()}

    # the AtomicCheckpointer's file loads strictly into plain detectron2 GeneralizedRCNN
    saved = torch.load(out / "model_final.pth", weights_only=False)["model"]
    baseline = _baseline_model()
    assert saved.keys() == baseline.state_dict().keys()
    baseline.load_state_dict(saved, strict=True)


@pytest.mark.slow
def test_two_gloo_processes_train_a_dicod_student_in_sync(tiny_fashiondet, teacher_path, tmp_path):
    """DDP wraps the student only (the teacher is not a submodule). find_unused_parameters stays
    False: every student parameter gets a gradient each step, also when a batch has no positive
    (the distiller's zero is connected to the logits and boxes); DDP would fail otherwise."""
    overrides = TINY_OVERRIDES + [
        f"model.distiller.teacher.path={teacher_path}", "train.max_iter=3", "train.eval_period=0",
        "train.checkpointer.period=100", f"train.output_dir={tmp_path / 'run'}",
    ]
    launch(train_and_dump, 2, dist_url="auto", args=(CONFIG, overrides, str(tmp_path)), backend="gloo")
    r0, r1 = torch.load(tmp_path / "rank0.pth"), torch.load(tmp_path / "rank1.pth")
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["iter"] == r1["iter"] == 3
    assert r0["state"].keys() == r1["state"].keys() == _baseline_model().state_dict().keys()
    for k in r0["state"]:
        if "num_batches_tracked" in k or "running_" in k:
            continue  # BN statistics are per process (broadcast_buffers=False)
        assert torch.equal(r0["state"][k], r1["state"][k]), k

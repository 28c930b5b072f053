"""Baseline Faster R-CNN on the tiny FashionDet: train, evaluate by the hook, checkpoint, resume, eval-only;
truncated images are skipped and counted."""
import json
import uuid

import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES, copy_as_own_coco

from dicod_d2.data.coco_json import register_coco_json
from dicod_d2.engine.defaults import default_argument_parser
from dicod_d2.engine.train_loop import main

CONFIG = str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")


def _run(*argv):
    return main(default_argument_parser().parse_args(["--config-file", CONFIG, *argv]))


@pytest.mark.slow
def test_train_evaluate_checkpoint_resume_and_eval_only(tiny_fashiondet, tmp_path):
    out = tmp_path / "run"
    common = TINY_OVERRIDES + [f"train.output_dir={out}", "train.checkpointer.period=2"]
    trainer = _run(*common, "train.max_iter=4", "train.eval_period=4")
    assert trainer.iter == 4
    # EvalHook ran COCOEvaluator at the last iteration and it wrote its files
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert isinstance(results, list)
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("bbox/AP" in m for m in metrics)
    assert list(out.glob("events.out.tfevents.*"))
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert {"model_0000001.pth", "model_0000003.pth", "model_final.pth"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob(".*.tmp")), "a temporary checkpoint file was left behind"

    saved = torch.load(out / "model_final.pth", weights_only=False)
    assert saved["iteration"] == saved["trainer"]["iteration"] == 3
    momentum = saved["trainer"]["optimizer"]["state"]
    assert momentum and all("momentum_buffer" in s for s in momentum.values())
    assert saved["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 4  # stepped after iteration 3

    # resume: continues at iteration 4 with the saved optimizer and scheduler state
    seen = {}
    from detectron2.engine import SimpleTrainer, hooks

    original = SimpleTrainer.before_train

    def capture(self):
        original(self)  # the LRScheduler hook builds its scheduler here, from the resumed iteration
        seen["iter"] = self.iter
        seen["optimizer"] = {k: v["momentum_buffer"].clone()
                             for k, v in self.optimizer.state_dict()["state"].items()}
        scheduler = next(h for h in self._hooks if isinstance(h, hooks.LRScheduler)).scheduler
        seen["lr_last_epoch"] = scheduler.last_epoch

    SimpleTrainer.before_train = capture
    try:
        trainer = _run("--resume", *common, "train.max_iter=6", "train.eval_period=0")
    finally:
        SimpleTrainer.before_train = original
    assert seen["iter"] == 4 and trainer.iter == 6
    assert seen["optimizer"].keys() == {k for k in momentum}
    for k, v in momentum.items():
        assert torch.equal(seen["optimizer"][k], v["momentum_buffer"])
    assert seen["lr_last_epoch"] == 4

    # eval-only from the final checkpoint gives the COCO metrics
    res = _run("--eval-only", *common, f"train.init_checkpoint={out / 'model_final.pth'}")
    assert set(res["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP@0.95"}


@pytest.mark.slow
def test_truncated_images_are_skipped_with_a_warning_and_counted(tiny_fashiondet, tmp_path, capfd):
    """A file cut after its valid header (it passes the up-front header check) in the train split,
    read by 2 DataLoader worker processes, and in the test split: the run ends normally."""
    own = copy_as_own_coco(tiny_fashiondet, tmp_path / "data")
    names, cut = {}, {}
    for split in ("train", "val"):
        coco = json.loads(own[split].read_text())
        coco["images"] = coco["images"][:3]
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in {i["id"] for i in coco["images"]}]
        own[split].write_text(json.dumps(coco))
        cut[split] = own["images"] / coco["images"][0]["file_name"]
        data = cut[split].read_bytes()
        cut[split].write_bytes(data[: len(data) // 2])
        names[split] = f"cut_{split}_{uuid.uuid4().hex[:8]}"
        register_coco_json(names[split], own[split], own["images"])
    out = tmp_path / "run"
    overrides = [o for o in TINY_OVERRIDES if ".dataset.names=" not in o] + [
        f"dataloader.train.dataset.names={names['train']}", f"dataloader.test.dataset.names={names['val']}",
        "dataloader.train.num_workers=2", f"train.output_dir={out}", "train.max_iter=3", "train.eval_period=3",
        "train.checkpointer.period=100",
    ]
    trainer = _run(*overrides)  # 3 iterations of 2 images: each of the 3 images twice
    assert trainer.iter == 3
    log = capfd.readouterr().out  # the DataLoader workers' lines too
    assert f"Skipping unreadable image '{cut['train']}' (OSError: image file is truncated" in log
    assert f"Skipping unreadable image '{cut['val']}' (OSError: image file is truncated" in log
    assert "1 unreadable images were skipped: their objects count as missed" in log
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert max(m.get("data/unreadable_images", 0) for m in metrics) >= 2
    assert any("bbox/AP" in m for m in metrics)


def test_faster_rcnn_divergence_names_the_iteration_and_the_losses(tiny_fashiondet, tmp_path):
    """Faster R-CNN's proposals become Inf/NaN before any loss does: the error says so with the
    iteration and the last losses, as a non-finite loss of RetinaNet or SSD does."""
    with pytest.raises(FloatingPointError) as info:
        _run(*TINY_OVERRIDES, "train.max_iter=4", "optimizer.lr=1e12", "lr_multiplier.warmup_factor=1.0",
             f"train.output_dir={tmp_path}")
    message = str(info.value)
    assert message.startswith("Loss became infinite or NaN at iteration=1! (the model's predictions did: "
                              "Predicted boxes or scores contain Inf/NaN"), message
    assert "\nloss_dict of iteration 0 = {'total_loss': " in message and "'loss_rpn_cls': " in message

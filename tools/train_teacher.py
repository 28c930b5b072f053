#!/usr/bin/env python
"""Train or evaluate a classification teacher on the object crops of a detection dataset.

    python tools/train_teacher.py --config-file configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py \
        [--num-gpus N] [--resume] [key=value ...]
    python tools/train_teacher.py --config-file configs/teacher/... --eval-only \
        train.init_checkpoint=<output_dir>/teacher.pth      # or a model_*.pth checkpoint

Training uses the students' engine (dicod_d2/engine/train_loop.py: checkpoints with resume,
EvalHook with top-1/top-5 on the val crops, TensorBoard, log with ETA) and ends by writing
``<train.output_dir>/teacher.pth``, ready for ``model.distiller.teacher.path`` of a student config.
``--eval-only`` prints top-1/top-5 overall, per class and per object size and writes
``confusion_matrix.png`` and ``classification_eval.json`` (the same numbers, the network's parameter
count and input size, the config and checkpoint; read by ``tools/results_doc.py collect-teacher``) to
``train.output_dir``.
"""
import json
import os
import sys

from detectron2.utils import comm

from dicod_d2.cli import run_cli
from dicod_d2.config.lazy import load_config
from dicod_d2.engine.defaults import create_ddp_model, setup
from dicod_d2.engine.teacher_export import load_classifier_weights
from dicod_d2.engine.train_loop import (
    build_model,
    check_eval_only_checkpoint,
    check_iterations,
    do_test,
    do_train,
)
from dicod_d2.utils.io import atomic_write_text


def main(args):
    """Entry point run in every process by the launcher."""
    cfg = load_config(args.config_file, args.opts)
    if args.eval_only:
        check_eval_only_checkpoint(cfg, "<teacher.pth or model_*.pth>")
    else:
        check_iterations(cfg, args.resume)
    setup(cfg, args)
    if args.eval_only:
        # the checkpoint replaces the init weights; their normalisation (e.g. EfficientNet-Lite's
        # (x - 127) / 128 in RGB) stays the model's
        cfg.model.load_init_weights = False
        model = build_model(cfg)
        load_classifier_weights(model, cfg.train.init_checkpoint)
        results = do_test(cfg, create_ddp_model(model))
        if comm.is_main_process() and "classification" in results:
            write_eval_summary(cfg, args.config_file, model, results["classification"])
        return results
    return do_train(args, cfg)


def write_eval_summary(cfg, config_file: str, model, metrics: dict) -> None:
    """``<train.output_dir>/classification_eval.json``: ``metrics`` (percent) with what produced them."""
    names = cfg.dataloader.test.dataset.names
    summary = {
        "config": config_file,
        "checkpoint": cfg.train.init_checkpoint,
        "datasets": [names] if isinstance(names, str) else list(names),
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": cfg.model.input_size,
        "classification": {k: float(v) for k, v in metrics.items()},
    }
    path = os.path.join(cfg.train.output_dir, "classification_eval.json")
    atomic_write_text(path, json.dumps(summary, indent=1, allow_nan=True) + "\n")


if __name__ == "__main__":
    sys.exit(run_cli(main, __doc__))

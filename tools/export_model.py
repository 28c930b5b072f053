#!/usr/bin/env python
"""Export a trained student (Faster R-CNN, RetinaNet, SSD) to ONNX, post-processing included.

    python tools/export_model.py --config-file configs/fashiondet/ssd/dicod.py \
        --checkpoint output/fashiondet/ssd_dicod/model_final.pth --format onnx --output student.onnx

The graph takes one uint8 image [3, H, W] (any H, W) in the student's channel order and returns
boxes (XYXY pixels of that image), scores and classes after the student's own NMS; run it with
ONNX Runtime alone (``tools/predict.py --onnx``). A DICOD config needs no teacher file.
"""
from __future__ import annotations

import argparse
import logging
import sys

from dicod_d2.cli import report_user_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="the student's LazyConfig")
    parser.add_argument("--checkpoint", required=True, help="the student's weights (model_final.pth)")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="export format")
    parser.add_argument("--output", required=True, help="the .onnx file to write (atomically)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value config overrides")
    return parser


def main(args: argparse.Namespace) -> None:
    from dicod_d2.export.student import export_student
    from dicod_d2.inference.student import load_student

    student = load_student(args.config_file, args.checkpoint, overrides=args.opts)
    path = export_student(student, args.output)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; input uint8 [3, H, W] "
          f"{student.input_format}; classes: {len(student.class_names)})")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli_args = build_parser().parse_args()
    sys.exit(report_user_errors(lambda: main(cli_args)))

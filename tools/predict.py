#!/usr/bin/env python
"""Run a trained student on your own images: drawn detections and a COCO-results predictions.json.

    python tools/predict.py --config-file configs/fashiondet/faster_rcnn/dicod.py \
        --checkpoint output/fashiondet/faster_rcnn_dicod/model_final.pth \
        --input photos/ 'more/*.png' one.jpg --output output/predict [--score-thresh 0.5] \
        [--device cpu] [--batch-size 4] [key=value ...]
    python tools/predict.py --onnx student.onnx --input photos/ --output output/predict_onnx

With ``--onnx`` the exported model runs with ONNX Runtime only (no config, no checkpoint).
A DICOD config needs no teacher file: the student is built without its distiller.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dicod_d2.cli import report_user_errors
from dicod_d2.errors import ConfigError

#: file suffixes taken from a folder (a file named explicitly is tried whatever its suffix)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted, not recursive) and glob patterns → image paths,
    in the order given, without duplicates.

    Raises:
        FileNotFoundError: an input that is neither an existing path nor a glob with a match.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found = [p]
        else:
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if os.path.isfile(q))
            if not found:
                raise FileNotFoundError(f"input '{item}' is not a file, a folder or a glob that matches "
                                        "files: check the path.")
        paths.extend(found)
    return list(dict.fromkeys(paths))


def summary_line(summary) -> str:
    """One line of a :class:`~dicod_d2.inference.predict.PredictSummary`."""
    return (f"{summary.images} images predicted, {len(summary.skipped)} skipped, {summary.detections} "
            f"detections, {summary.seconds:.1f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", help="student LazyConfig (with --checkpoint)")
    parser.add_argument("--checkpoint", help="the student's weights (model_final.pth)")
    parser.add_argument("--onnx", help="an exported student (tools/export_model.py): run it with ONNX Runtime")
    parser.add_argument("--input", nargs="+", required=True, help="image files, folders or glob patterns")
    parser.add_argument("--output", required=True, help="folder for the drawn images and predictions.json")
    parser.add_argument("--score-thresh", type=float, default=0.5, help="keep detections scoring at least this (an ONNX "
                        "graph already dropped those under the student's test threshold)")
    parser.add_argument("--device", default="cpu", help="PyTorch device: cpu or cuda[:i]")
    parser.add_argument("--batch-size", type=int, default=1, help="images per PyTorch forward")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="key=value config overrides")
    return parser


def main(args: argparse.Namespace) -> None:
    from dicod_d2.inference.predict import predict_images

    if args.onnx and (args.config_file or args.checkpoint):
        raise ConfigError("give either --onnx or --config-file with --checkpoint, not both.")
    if not args.onnx and not (args.config_file and args.checkpoint):
        raise ConfigError("give --config-file and --checkpoint (PyTorch), or --onnx (ONNX Runtime).")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}.")
    paths = expand_inputs(args.input)
    if args.onnx:
        from dicod_d2.export.onnx import OnnxDetector, OnnxRunError

        detector = OnnxDetector(args.onnx)
        image_format, class_names, category_ids = (detector.input_format, detector.class_names,
                                                   detector.category_ids)

        def batch_fn(images):
            return [detector(im) for im in images]
        run_errors = (OnnxRunError,)  # skip an image ONNX Runtime fails on, as an unreadable one
    else:
        from dicod_d2.engine.defaults import resolve_device
        from dicod_d2.inference.predict import torch_batch_fn
        from dicod_d2.inference.student import load_student

        device = resolve_device(args.device)
        student = load_student(args.config_file, args.checkpoint, overrides=args.opts,
                               score_thresh=args.score_thresh, device=device)
        image_format, class_names, category_ids = (student.input_format, student.class_names,
                                                   student.category_ids)
        batch_fn = torch_batch_fn(student.detector, device)
        run_errors = ()  # a PyTorch failure is a bug: its traceback
    summary = predict_images(
        paths, batch_fn, image_format=image_format, class_names=class_names, category_ids=category_ids,
        output_dir=args.output, score_thresh=args.score_thresh, batch_size=args.batch_size,
        run_errors=run_errors,
    )
    print(summary_line(summary))
    for path, _ in summary.skipped:
        print(f"  skipped: {path}")
    print(f"wrote {args.output}/predictions.json")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cli_args = build_parser().parse_args()
    sys.exit(report_user_errors(lambda: main(cli_args)))

#!/usr/bin/env python
"""TIDE error analysis of detectron2 COCO results: main errors, error curves, CSV/JSON summary.

Example::

    python tools/tide_analysis.py --gt datasets/coco/annotations/instances_val2017.json \\
        --dets baseline=output/baseline/inference/coco_instances_results.json \\
               dicod=output/dicod/inference/coco_instances_results.json \\
        --out output/tide

See :mod:`dicod_d2.evaluation.tide_analysis` for what is measured, ``tide_report`` for what is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from detectron2.utils.logger import setup_logger
from tide_report import format_main_errors, write_analysis

from dicod_d2.errors import USER_ERRORS
from dicod_d2.evaluation.tide_analysis import DEFAULT_THRESHOLDS, TideInputError
from dicod_d2.utils.logger import setup_run_logging


def parse_named_paths(items: Sequence[str]) -> dict[str, Path]:
    """``["NAME=PATH", ...]`` -> ``{NAME: Path(PATH)}``; clear error on a malformed or repeated item."""
    named: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not (sep and name and path):
            raise TideInputError(
                f"bad detections argument '{item}': expected NAME=PATH, for example "
                "baseline=output/baseline/inference/coco_instances_results.json."
            )
        if name in named:
            raise TideInputError(f"run name '{name}' is given twice; give every run its own NAME.")
        named[name] = Path(path)
    if not named:
        raise TideInputError("no detections given: pass at least one NAME=PATH.")
    return named


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--gt", required=True, help="COCO ground-truth json (e.g. instances_val.json)"
    )
    parser.add_argument(
        "--dets",
        required=True,
        nargs="+",
        metavar="NAME=PATH",
        help="one or more runs: a name and its coco_instances_results.json",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--thresholds",
        nargs="+",
        type=float,
        default=list(DEFAULT_THRESHOLDS),
        help="foreground IoU thresholds of the curves (default 0.50 0.55 ... 0.95)",
    )
    parser.add_argument("--no-pdf", action="store_true", help="write the figure as PNG only")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="keep each run's analysis beside its results json (<stem>.tide.json) and reuse it "
        "while the ground truth, results and thresholds are unchanged",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_run_logging(lambda: setup_logger(name="dicod_d2"))  # replaces an earlier setup's handlers
    try:
        summary = write_analysis(
            args.gt,
            parse_named_paths(args.dets),
            args.out,
            thresholds=args.thresholds,
            save_pdf=not args.no_pdf,
            cache=args.cache,
        )
    except USER_ERRORS as e:
        parser.error(str(e))
    print("TIDE main errors (dAP, fg IoU 0.5, bg IoU 0.1):")
    print(format_main_errors(summary))
    print("wrote " + ", ".join(summary["files"].values()))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])

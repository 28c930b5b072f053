#!/usr/bin/env python
"""Collect the COCO box APs of finished runs into the paper's table: baseline vs each DICOD variant.

    python tools/collect_results.py output/coco [more roots...] [--metrics AP AP50 AP75] \\
        [--paper] [--out table.md]

A run is a folder holding ``metrics.json`` (written by tools/lazyconfig_train_net.py); its last line
with ``bbox/<metric>`` is the run's result. The folder names the student and the variant, as the
configs' ``train.output_dir`` do: ``<student>/<variant>`` (COCO configs) or ``<student>_<variant>``
(FashionDet configs), ``<variant>`` one of baseline, kd_cls, loc, loc_kd_loc, dicod. Each table has a
row per student and a column per variant, ``AP (Δ vs baseline)``; ``--paper`` adds the paper's
COCO numbers (Section 4; Table S2 for QR50's longer schedules) under each student that the paper reports. A list of the runs read (with the
iteration of their evaluation) follows the tables, so an unfinished run is easy to spot.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from dicod_d2.modeling.variants import VARIANTS
from dicod_d2.utils.formatting import signed

#: COCO val2017 mAP reported by the paper (Section 4, Table S2), per config folder; None = not reported
PAPER = {
    "ssd300": (25.6, 26.3, 27.1, 27.2, 27.9),
    "ssd512": (29.4, 30.3, 30.8, 31.0, 32.1),
    "faster_rcnn_qr50_1x": (23.3, 25.9, 24.2, 24.3, 27.2),
    "faster_rcnn_mobilenetv2_1x": (31.9, 32.6, 32.2, 32.3, 32.7),
    "faster_rcnn_qr50_2x": (23.6, None, None, None, 27.7),
    "faster_rcnn_qr50_4x": (24.5, None, None, None, 28.4),
    "faster_rcnn_r50_2x": (38.4, None, None, None, 38.8),
    "retinanet_r50_2x": (37.4, None, None, None, 37.9),
}


class ResultsError(ValueError):
    """Bad input: a root that does not exist, a metrics.json that cannot be read."""


@dataclass(frozen=True)
class Run:
    """One finished run: ``metrics`` maps e.g. "AP" to the value (percent) of its last evaluation."""

    student: str
    variant: str
    path: Path
    iteration: int | None
    metrics: dict[str, float]


def parse_run_name(folder: Path) -> tuple[str, str] | None:
    """``(student, variant)`` named by a run folder, or None if it names no variant."""
    if folder.name in VARIANTS:
        return folder.parent.name, folder.name
    # longest first: "x_loc_kd_loc" must not read as student "x_loc_kd" with variant "loc"
    for variant in sorted(VARIANTS, key=len, reverse=True):
        if folder.name.endswith("_" + variant) and len(folder.name) > len(variant) + 1:
            return folder.name[: -len(variant) - 1], variant
    return None


def last_evaluation(metrics_file: Path) -> tuple[int | None, dict[str, float]]:
    """``(iteration, {metric: value})`` of the last line of a detectron2 metrics.json with bbox/AP.

    Returns ``(None, {})`` when no line holds an evaluation. Raises ResultsError on a line that is
    not JSON (a truncated last line of a running job is skipped).
    """
    lines = metrics_file.read_text().splitlines()
    for number, line in reversed(list(enumerate(lines, 1))):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                continue
            raise ResultsError(f"{metrics_file}:{number} is not JSON ({e}).") from None
        found = {k.split("/", 1)[1]: float(v) for k, v in record.items() if k.startswith("bbox/")}
        if "AP" in found:
            return record.get("iteration"), found
    return None, {}


def collect_runs(roots: list[Path]) -> list[Run]:
    """Every run with an evaluation under ``roots`` (searched recursively), sorted by path."""
    runs = []
    for root in roots:
        if not root.is_dir():
            raise ResultsError(f"output root '{root}' is not a folder.")
        for metrics_file in sorted(root.rglob("metrics.json")):
            named = parse_run_name(metrics_file.parent)
            if named is None:
                print(f"skipping {metrics_file}: its folder names no variant {tuple(VARIANTS)}", file=sys.stderr)
                continue
            iteration, metrics = last_evaluation(metrics_file)
            if not metrics:
                print(f"skipping {metrics_file}: no bbox evaluation yet", file=sys.stderr)
                continue
            runs.append(Run(*named, metrics_file.parent, iteration, metrics))
    return runs


def _cell(value: float | None, base: float | None) -> str:
    if value is None:
        return "–"
    if base is None:
        return f"{value:.1f}"
    return f"{value:.1f} ({signed(value - base)})"


def format_tables(runs: list[Run], metrics: list[str], paper: bool = False) -> str:
    """Markdown: one table per metric (rows: students; columns: variants), then the runs read."""
    table: dict[str, dict[str, Run]] = {}
    for run in runs:
        if run.variant in table.setdefault(run.student, {}):
            raise ResultsError(
                f"two runs for {run.student} / {run.variant}: {table[run.student][run.variant].path} "
                f"and {run.path}; give roots that hold one run per student and variant."
            )
        table[run.student][run.variant] = run
    out = []
    for metric in metrics:
        labels = [variant.label for variant in VARIANTS.values()]
        out += [f"### bbox {metric} (Δ vs baseline)", "", "| student | " + " | ".join(labels) + " |",
                "|---" * (len(labels) + 1) + "|"]
        for student in sorted(table):
            values = [table[student][v].metrics.get(metric) if v in table[student] else None for v in VARIANTS]
            out.append(f"| {student} | " + " | ".join(_cell(v, values[0] if i else None) for i, v in enumerate(values)) + " |")
            if paper and metric == "AP" and student in PAPER:
                ref = PAPER[student]
                out.append("| ↳ paper | " + " | ".join(_cell(v, ref[0] if i else None) for i, v in enumerate(ref)) + " |")
        out.append("")
    out += ["Runs read (iteration of the evaluation):", ""]
    out += [f"- {r.student} / {r.variant}: `{r.path}` (iteration {r.iteration})" for r in runs]
    return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders searched for <run>/metrics.json")
    parser.add_argument("--metrics", nargs="+", default=["AP"],
                        help="bbox metrics to tabulate (AP, AP50, AP75, APs, APm, APl); default AP")
    parser.add_argument("--paper", action="store_true", help="add the paper's numbers (bbox AP table)")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs = collect_runs(args.roots)
        if not runs:
            raise ResultsError(f"no evaluated run found under {', '.join(map(str, args.roots))}.")
        text = format_tables(runs, args.metrics, paper=args.paper)
    except (ResultsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(text, end="")
    if args.out is not None:
        from dicod_d2.utils.io import atomic_write_text

        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

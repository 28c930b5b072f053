"""Writes a TIDE summary (:func:`dicod_d2.evaluation.tide_analysis.analyze`) as files and text:
``tide_errors.png`` (and ``.pdf``), one panel per error type and one line per run;
``tide_summary.csv`` (one row per run and fg threshold); ``tide_summary.json``; a text table of the
main errors. Used by ``tools/tide_analysis.py`` and the demo.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from dicod_d2.evaluation.tide_analysis import DEFAULT_THRESHOLDS, ERROR_NAMES, ERROR_TYPES, analyze
from dicod_d2.utils.io import atomic_path, atomic_write_text, ensure_writable_dir

__all__ = ["format_main_errors", "plot_error_curves", "write_analysis", "write_csv"]

FIGURE_NAME = "tide_errors"
CSV_NAME = "tide_summary.csv"
JSON_NAME = "tide_summary.json"


def write_analysis(
    gt_json: str | os.PathLike,
    dets: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    save_pdf: bool = True,
    cache: bool = False,
) -> dict:
    """:func:`~dicod_d2.evaluation.tide_analysis.analyze`, written under ``out_dir``: the figure,
    ``tide_summary.csv`` and ``tide_summary.json`` (the returned summary, whose ``files`` holds the
    output paths). The inputs are checked, then ``out_dir``, before the analysis."""
    out_dir = Path(out_dir)
    summary = analyze(gt_json, dets, thresholds, cache,
                      before_analysis=lambda: ensure_writable_dir(out_dir, option="--out"))
    files = {"figure_png": out_dir / f"{FIGURE_NAME}.png"}
    if save_pdf:
        files["figure_pdf"] = out_dir / f"{FIGURE_NAME}.pdf"
    files.update(csv=out_dir / CSV_NAME, json=out_dir / JSON_NAME)
    summary["files"] = {k: str(v) for k, v in files.items()}
    plot_error_curves(summary, files["figure_png"], "png")
    if save_pdf:
        plot_error_curves(summary, files["figure_pdf"], "pdf")
    write_csv(summary, files["csv"])
    atomic_write_text(files["json"], json.dumps(summary, indent=2) + "\n")
    return summary


def write_csv(summary: dict, path: str | os.PathLike) -> None:
    """One row per run and fg threshold: AP, dAP and error count of every type."""
    header = ["run", "fg_iou_threshold", "bg_iou_threshold", "AP"]
    header += [f"dAP_{k}" for k in ERROR_TYPES] + [f"count_{k}" for k in ERROR_TYPES]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for name, run in summary["runs"].items():
        curves = run["curves"]
        for i, t in enumerate(curves["fg_threshold"]):
            writer.writerow(
                [name, t, summary["bg_iou_threshold"], f"{curves['AP'][i]:.4f}"]
                + [f"{curves['dAP'][k][i]:.4f}" for k in ERROR_TYPES]
                + [curves["counts"][k][i] for k in ERROR_TYPES]
            )
    atomic_write_text(path, buf.getvalue())


def plot_error_curves(summary: dict, path: str | os.PathLike, fmt: str = "png") -> None:
    """One panel per error type (2 x 3), dAP against the fg IoU threshold, one line per run."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    markers = "osD^vP*X"  # distinct markers, shrinking sizes: identical curves stay visible
    for ax, err in zip(axes.flat, ERROR_TYPES, strict=True):
        top = 0.0
        for k, (name, run) in enumerate(summary["runs"].items()):
            curves = run["curves"]
            ax.plot(
                curves["fg_threshold"],
                curves["dAP"][err],
                label=name,
                marker=markers[k % len(markers)],
                ms=max(8 - 1.5 * k, 3),
                alpha=0.85,
            )
            top = max(top, *curves["dAP"][err])
        ax.set_title(f"{err} ({ERROR_NAMES[err]})")
        ax.set_xlabel("foreground IoU threshold")
        ax.set_ylabel("dAP")
        ax.set_ylim(0, max(1.0, 1.1 * top))
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    fig.suptitle(
        f"TIDE errors vs foreground IoU threshold (background IoU {summary['bg_iou_threshold']})"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=120)


def format_main_errors(summary: dict) -> str:
    """A text table: one row per run with AP50 and the dAP of each main error type."""
    width = max(len("run"), *(len(n) for n in summary["runs"]))
    lines = [f"{'run':<{width}}  {'AP50':>6}  " + "  ".join(f"{k:>6}" for k in ERROR_TYPES)]
    for name, run in summary["runs"].items():
        daps = "  ".join(f"{run['main_errors'][k]:6.2f}" for k in ERROR_TYPES)
        lines.append(f"{name:<{width}}  {run['AP50']:6.2f}  {daps}")
    return "\n".join(lines)

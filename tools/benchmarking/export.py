"""The ``export`` section of ``tools/benchmark.py``: is each trained student deployable?

Per student (``NAME=CONFIG,CHECKPOINT``): ONNX export, COCO AP of ONNX Runtime and of PyTorch on a
dataset (the same in-graph preprocessing, :class:`dicod_d2.inference.StudentDetector`), CPU latency
per image (p50 / p90 ms) of both at 1 thread and at all threads, and the ONNX and checkpoint sizes.
Everything is measured by :func:`dicod_d2.export.deployable.deployable_student`.
"""
from __future__ import annotations

import os
from pathlib import Path

from dicod_d2.export.deployable import deployable_student


def parse_export_runs(items: list[str]) -> list[tuple[str, str, str]]:
    """``NAME=CONFIG,CHECKPOINT`` strings → (name, config, checkpoint); raises ValueError on a bad one."""
    runs = []
    for item in items:
        name, sep, rest = item.partition("=")
        config, sep2, checkpoint = rest.partition(",")
        if not (sep and sep2 and name and config and checkpoint):
            raise ValueError(f"--export-run must be NAME=CONFIG,CHECKPOINT, got {item!r}.")
        runs.append((name, config, checkpoint))
    return runs


def bench_export(runs: list[tuple[str, str, str]], dataset: str | None, out_dir: str | Path, *,
                 latency_images: int = 20, ap_limit: int | None = None) -> dict:
    """``{name: deployable_student(...)}`` at 1 thread and at all cores (``os.cpu_count()``)."""
    threads = sorted({1, os.cpu_count() or 1})
    return {name: deployable_student(config, checkpoint, dataset, Path(out_dir) / name, threads=threads,
                                     latency_images=latency_images, ap_limit=ap_limit)
            for name, config, checkpoint in runs}


def format_export_markdown(results: dict) -> str:
    """The export section as a markdown table (AP in percent, latency in ms, sizes in MB)."""
    lines = ["### Deployable students (ONNX Runtime vs PyTorch, CPU)", "",
             "| student | AP PyTorch | AP ONNX | threads | PyTorch p50 / p90 ms | ONNX p50 / p90 ms "
             "| checkpoint MB | ONNX MB |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for n, pt in r["latency_ms"]["pytorch"].items():
            ox = r["latency_ms"]["onnx"][n]
            lines.append(
                f"| {name} | {r['ap']['pytorch']:.2f} | {r['ap']['onnx']:.2f} | {n} | {pt['p50']:.1f} / "
                f"{pt['p90']:.1f} | {ox['p50']:.1f} / {ox['p90']:.1f} | {r['checkpoint_mb']:.1f} | {r['onnx_mb']:.1f} |")
    return "\n".join(lines)

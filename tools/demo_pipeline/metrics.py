"""Read a finished detectron2 run's metrics and aggregate runs over seeds."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from dicod_d2.evaluation.coco import IOU_THRESHOLDS

#: the COCO numbers of the report, in the order of its tables
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
IOU_KEYS = tuple(f"AP@{t:.2f}" for t in IOU_THRESHOLDS)


def read_run(output_dir: str | Path) -> dict:
    """The last COCO evaluation and the median seconds per iteration of one run.

    Returns ``{"bbox": {AP, AP50, ..., AP@0.50, ...}, "s_per_iter": float, "iterations": int}``.

    Raises:
        FileNotFoundError / ValueError: when the run has no metrics or no evaluation.
    """
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run did not train")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    evals = [r for r in rows if "bbox/AP" in r]
    if not evals:
        raise ValueError(f"{path} holds no COCO evaluation (bbox/AP): the run did not evaluate")
    last = evals[-1]
    bbox = {k.split("/", 1)[1]: float(v) for k, v in last.items() if k.startswith("bbox/")}
    times = [r["time"] for r in rows if "time" in r]
    return {
        "bbox": bbox,
        "s_per_iter": statistics.median(times) if times else float("nan"),
        "iterations": max(int(r.get("iteration", -1)) for r in rows) + 1,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: dict[str, dict[int, dict]], baseline: str = "baseline") -> dict[str, dict]:
    """Per variant, mean and std over its seeds of every COCO number and of s/iter.

    ``runs``: variant -> seed -> :func:`read_run` result. A variant trained on fewer seeds than the
    baseline (the single-term students of ``--ablation-seeds``) also gets ``baseline_bbox``: the
    baseline's mean over the same seeds, so its difference pairs runs of the same seed."""
    out = {}
    for variant, by_seed in runs.items():
        items = list(by_seed.values())
        keys = sorted(set.intersection(*(set(r["bbox"]) for r in items)))
        out[variant] = {
            "seeds": sorted(by_seed),
            "bbox": {k: mean_std([r["bbox"][k] for r in items]) for k in keys},
            "s_per_iter": mean_std([r["s_per_iter"] for r in items]),
        }
    base = runs.get(baseline, {})
    for variant, by_seed in runs.items():
        if variant != baseline and base and set(by_seed) < set(base):
            paired = {seed: base[seed] for seed in by_seed}
            out[variant]["baseline_bbox"] = aggregate({baseline: paired})[baseline]["bbox"]
    return out

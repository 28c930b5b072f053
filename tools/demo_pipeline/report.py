"""The demo's report: tables in the paper's form (baseline vs each variant) and the AP/IoU figure."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Mapping, Sequence

from dicod_d2.utils.formatting import signed
from dicod_d2.utils.io import atomic_path, atomic_write_text

from .metrics import AP_KEYS, IOU_KEYS


def _cell(mean: float, std: float, base: float | None, seeds: int) -> str:
    text = f"{mean:.1f}" + (f" ± {std:.1f}" if seeds > 1 else "")
    if base is not None:
        text += f" ({signed(mean - base)})"
    return text


def results_table(agg: Mapping[str, dict], order: Sequence[str], keys: Sequence[str],
                  labels: Mapping[str, str], baseline: str = "baseline",
                  with_time: bool = False) -> str:
    """Markdown table: one row per variant, its seeds, then ``mean ± std (difference to the baseline's
    mean over the same seeds)`` per key."""
    head = ["run", "seeds", *keys] + (["s/iter"] if with_time else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = agg.get(baseline)
    for name in order:
        if name not in agg:
            continue
        a = agg[name]
        # the difference pairs the same seeds: the baseline over this variant's seeds when it has fewer
        ref_bbox = None if name == baseline or base is None else a.get("baseline_bbox", base["bbox"])
        cells = []
        for k in keys:
            mean, std = a["bbox"].get(k, (float("nan"), 0.0))
            ref = None if ref_bbox is None else ref_bbox.get(k, (None,))[0]
            cells.append(_cell(mean, std, ref, len(a["seeds"])))
        if with_time:
            cells.append(f"{a['s_per_iter'][0]:.2f}")
        seeds = ", ".join(map(str, a["seeds"]))
        lines.append(f"| {labels.get(name, name)} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_table(agg: Mapping[str, dict], reference: Sequence[Mapping], order: Sequence[str],
                    labels: Mapping[str, str]) -> str:
    """Markdown table: this demo's AP per variant beside the project's reference runs of the same
    config and teacher (``reference``: results_doc records), with the reference's spread over seeds."""
    by_variant: dict[str, dict[int, float]] = {}
    for r in reference:
        by_variant.setdefault(r["variant"], {})[r["seed"]] = r["bbox"]["AP"]
    lines = ["| run | this demo: AP (seeds) | reference: AP mean ± std (seeds) | reference: lowest – highest seed "
             "| this demo − reference |", "|---|---|---|---|---|"]
    for name in order:
        if name not in agg or name not in by_variant:
            continue
        mine, ref = agg[name], list(by_variant[name].values())
        mean = statistics.fmean(ref)
        std = statistics.stdev(ref) if len(ref) > 1 else 0.0
        seeds = ", ".join(map(str, sorted(by_variant[name])))
        lines.append(f"| {labels.get(name, name)} | {mine['bbox']['AP'][0]:.1f} ({', '.join(map(str, mine['seeds']))}) "
                     f"| {mean:.1f} ± {std:.1f} ({seeds}) | {min(ref):.1f} – {max(ref):.1f} "
                     f"| {signed(mine['bbox']['AP'][0] - mean)} |")
    return "\n".join(lines)


def plot_ap_vs_iou(agg: Mapping[str, dict], order: Sequence[str], labels: Mapping[str, str],
                   path: str | Path, title: str = "COCO AP against the IoU threshold") -> None:
    """AP (mean over seeds, with ±std band) against the IoU threshold, one line per variant."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    thresholds = [float(k.split("@")[1]) for k in IOU_KEYS]
    for name in order:
        if name not in agg:
            continue
        means = [agg[name]["bbox"][k][0] for k in IOU_KEYS]
        stds = [agg[name]["bbox"][k][1] for k in IOU_KEYS]
        ax.plot(thresholds, means, marker="o", label=labels.get(name, name))
        ax.fill_between(thresholds, [m - s for m, s in zip(means, stds, strict=True)],
                        [m + s for m, s in zip(means, stds, strict=True)], alpha=0.15)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("AP (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def ap_table(agg, order, labels) -> str:
    """The COCO summary table with s/iter."""
    return results_table(agg, order, AP_KEYS, labels, with_time=True)


def iou_table(agg, order, labels) -> str:
    """AP at each IoU threshold (the paper's table 5 form)."""
    return results_table(agg, order, IOU_KEYS, labels)


def tide_table(summary: Mapping) -> str:
    """Markdown table of TIDE's main errors (dAP at fg IoU 0.5, bg 0.1), one row per run."""
    types = list(summary["error_types"])
    lines = ["| run | AP50 | " + " | ".join(summary["error_types"][t] for t in types) + " |",
             "|" + "---|" * (len(types) + 2)]
    for name, run in summary["runs"].items():
        cells = " | ".join(f"{run['main_errors'][t]:.2f}" for t in types)
        lines.append(f"| {name} | {run['AP50']:.1f} | {cells} |")
    return "\n".join(lines)


def _reference_part(student: str, agg: Mapping[str, dict], reference: Sequence[Mapping], order: Sequence[str],
                    labels: Mapping[str, str], split: str) -> list[str]:
    """The report's lines comparing this demo's runs with the project's reference runs."""
    head = f"### {student}: this demo against the project's reference ({split} split)"
    if not reference:
        return [head, "", "No reference runs of these configs and teacher are in the results document; "
                "compare by hand with projects/DICOD/RESULTS.md.", ""]
    return [head, "", "The reference: the same configs and teacher trained by the project on several "
            "seeds (projects/DICOD/RESULTS.md). A single seed differs from machine to machine; expect one "
            "seed within about two standard deviations of the reference mean.", "",
            reference_table(agg, reference, order, labels), "",
            f"Reference measured with {'; '.join(sorted({r['measured_with'] for r in reference}))}.", ""]


def write_report(path: str | Path, *, title: str, settings: Sequence[str], teachers: Mapping[str, Mapping],
                 agg: Mapping[str, Mapping[str, dict]], order: Sequence[str], labels: Mapping[str, str],
                 splits: Sequence[str], tide_summary: Mapping, figures: Mapping, examples: Sequence[str],
                 deployable: str, commands: Sequence[str], stage_seconds: Mapping[str, float],
                 reference: Mapping[str, Sequence[Mapping]] = {}) -> None:
    """``report.md``: settings, teachers, per student the COCO tables in the paper's form on the
    report split (``splits[0]``) with the choice split (``splits[1]``) beside it, TIDE, figures,
    example detections, the deployable-student line and the commands. ``agg``: student -> split -> variant -> aggregate.
    ``reference``: student -> the project's reference records (results_doc) of the same configs, if any.
    Image paths are written relative to the report."""
    folder = Path(path).parent
    report_split, choice_split = splits

    def rel(p) -> str:
        return str(Path(p).resolve().relative_to(folder.resolve()))

    parts = [f"# {title}", "", *[f"- {line}" for line in settings], "",
             "## Teachers", "", "| recipe | top-1 % | top-5 % | file |", "|---|---|---|---|",
             *[f"| {r} | {t['top1']:.2f} | {t['top5']:.2f} | {t['path']} |" for r, t in teachers.items()],
             "", "Top-1 / top-5 on the validation object crops.", ""]
    for student, by_split in agg.items():
        parts += [
            f"## {student}: COCO detection AP ({report_split} split)", "",
            "Mean over seeds ± sample standard deviation, (difference to the baseline's mean over the same seeds); "
            "s/iter is the median seconds per training iteration.", "",
            ap_table(by_split[report_split], order, labels), "",
            *_reference_part(student, by_split[report_split], reference.get(student, ()), order, labels,
                             report_split),
            f"### {student}: the same runs on the {choice_split} split (where settings are chosen)", "",
            results_table(by_split[choice_split], order, AP_KEYS[:3], labels), "",
            f"### {student}: AP at each IoU threshold ({report_split}; the paper's table 5)", "",
            iou_table(by_split[report_split], order, labels), "",
            f"![AP against IoU]({rel(figures['ap_vs_iou'][student])})", "",
        ]
    parts += [
        f"## TIDE error analysis ({report_split} split)", "",
        "dAP that fixing each error type would add (foreground IoU 0.5, background 0.1); the "
        "figure shows each type over the foreground IoU threshold 0.50…0.95.", "",
        tide_table(tide_summary), "",
        f"![TIDE error curves]({rel(figures['tide'])})", "",
        f"## Example detections ({report_split} images, first student and seed; each panel: its top "
        "detections, as many as the image has objects)", "",
        *[f"![{Path(e).stem}]({rel(e)})" for e in examples], "",
        "## Deployable student", "", deployable, "",
        "## Commands", "",
        "```bash", *commands, "```", "",
        "## Time per stage", "",
        "| stage | seconds |", "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in stage_seconds.items()], "",
    ]
    atomic_write_text(path, "\n".join(parts))


def deployable_line(result: dict, threads: int = 1) -> str:
    """One markdown line from a :func:`~dicod_d2.export.deployable.deployable_student` result (the demo report's
    "deployable student" line), with the latencies at ``threads``."""
    pt, ox = result["latency_ms"]["pytorch"][str(threads)], result["latency_ms"]["onnx"][str(threads)]
    return (f"Deployable student: exported to ONNX ({result['onnx_mb']:.1f} MB; checkpoint "
            f"{result['checkpoint_mb']:.1f} MB); AP on {result['dataset']}: ONNX Runtime "
            f"{result['ap']['onnx']:.2f}, PyTorch {result['ap']['pytorch']:.2f}; CPU latency per image "
            f"({threads} thread{'s' if threads > 1 else ''}, p50 / p90): ONNX Runtime {ox['p50']:.1f} / "
            f"{ox['p90']:.1f} ms, PyTorch {pt['p50']:.1f} / {pt['p90']:.1f} ms.")

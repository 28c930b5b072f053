#!/usr/bin/env python
"""The results document: a committed summary of runs, and the tables of RESULTS.md rendered from it.

    # add finished runs (folders <variant>_seed<N>/ under ROOT, e.g. output/demo/students/faster_rcnn)
    python tools/results_doc.py collect ROOT --family faster_rcnn --teacher resnet_tiny_56 \\
        --dataset fashiondet --schedule "600 it., batch 8" --split test --measured-with "..." \\
        --out projects/DICOD/results/NAME.json
    # rewrite the generated blocks of RESULTS.md from projects/DICOD/results/*.json
    python tools/results_doc.py render
    # exit 1 when RESULTS.md's generated blocks differ from what the summary renders (CI)
    python tools/results_doc.py render --check
    # add a teacher's val-crop evaluation (the folder of tools/train_teacher.py --eval-only)
    python tools/results_doc.py collect-teacher EVAL_DIR --name efficientnet_lite0_56 --split val \
        --measured-with "..."
    # attach a TIDE analysis of the same runs (tools/tide_analysis.py, runs named <variant>_seed<N>)
    python tools/results_doc.py collect ROOT ... --tide output/tide/tide_summary.json --out ...
    # student AP against teacher top-1, one point per teacher (full DICOD, mean ± std over seeds)
    python tools/results_doc.py plot --family faster_rcnn --split test --out FIGURE.png

Summary: JSON files holding a list of records, one per run and split: ``family``, ``variant``,
``seed``, ``teacher``, ``dataset``, ``split``, ``schedule``, ``bbox`` ({"AP": percent, ...}),
``measured_with`` and ``command``; optionally ``tide`` ({"fg_threshold": [...], "dAP": {error type:
[...]}}, TIDE's isolated dAP per foreground IoU threshold, from ``collect --tide``). A ``val`` split is read from the run's ``metrics.json`` (its last
evaluation), any other split from ``<run>/<split>/coco_eval.json`` (what tools/demo.py writes).

Rendering: one table per (dataset, family, schedule, teacher, split), between
``<!-- BEGIN GENERATED: key -->`` and ``<!-- END GENERATED: key -->``: per variant the mean ± std over
its seeds with the difference to the baseline's mean over the same seeds, then one row per seed
of each variant run on several seeds (difference to the same seed's baseline). A table without a
block in the document is appended at the end with its block, ready for a hand-written note above
it. Variants and families not in the label tables below render under their own name.

Teachers: ``projects/DICOD/results/teachers/*.json`` holds one record per teacher evaluation (``name``,
``dataset``, ``split``, ``config``, ``parameters``, ``input_size``, ``classification`` {"top1": percent,
...}, ``measured_with``, ``command``). They render as one table per (dataset, split), and the students'
records whose ``teacher`` names one of them as a "teacher's share" table per (dataset, family, schedule,
split): full DICOD's AP against its teacher's top-1. Groups whose records carry ``tide`` also render a
localization table (``localization/<group>``): AP75 and TIDE's localization error at foreground IoU
0.5 and 0.7, as the paper's Figure S1 compares them.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from dicod_d2.modeling.variants import BASELINE, CONTROLS, VARIANTS
from dicod_d2.utils.formatting import signed

REPO = Path(__file__).resolve().parents[1]
SUMMARY_DIR = REPO / "projects/DICOD/results"
TEACHER_DIR = SUMMARY_DIR / "teachers"
DOCUMENT = REPO / "projects/DICOD/RESULTS.md"
METRICS = ("AP", "AP50", "AP75")

#: variant name -> its label in the tables, in table order (the one place to add a variant)
VARIANT_LABELS = {
    **{name: variant.label for name, variant in VARIANTS.items()},
    **{name: control.label for name, control in CONTROLS.items()},
}
#: family (config folder) -> its name in the table titles
FAMILY_LABELS = {
    "faster_rcnn": "Faster R-CNN",
    "faster_rcnn_lite0": "Faster R-CNN, ImageNet-initialised EfficientNet-Lite0",
    "retinanet": "RetinaNet",
    "ssd": "SSD300 slim",
}
GROUP_FIELDS = ("dataset", "family", "schedule", "teacher", "split")
SHARE_FIELDS = ("dataset", "family", "schedule", "split")
TEACHER_FIELDS = ("name", "dataset", "split", "config", "parameters", "input_size", "classification",
                  "measured_with", "command")
SIZES = ("small", "medium", "large")
#: foreground IoU thresholds of the localization table's TIDE columns
LOC_THRESHOLDS = (0.5, 0.7)
RECORD_FIELDS = ("family", "variant", "seed", "teacher", "dataset", "split", "schedule", "bbox",
                 "measured_with", "command")
BLOCK = re.compile(r"<!-- BEGIN GENERATED: (?P<key>[^>]+?) -->\n.*?<!-- END GENERATED: (?P=key) -->\n",
                   re.DOTALL)


class ResultsDocError(ValueError):
    """Bad input: an unreadable summary, a record without a field, a run without an evaluation."""


def load_records(folder: Path = SUMMARY_DIR, fields: tuple[str, ...] = RECORD_FIELDS) -> list[dict]:
    """Every record of ``folder/*.json`` (files in name order), each checked for ``fields``."""
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            items = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ResultsDocError(f"{path} is not JSON ({e}).") from None
        for i, record in enumerate(items):
            missing = [k for k in fields if k not in record]
            if missing:
                raise ResultsDocError(f"{path} record {i} lacks {missing}.")
            records.append(record)
    return records


def group_key(record: dict) -> str:
    """The block name of a record's table, e.g. ``fashiondet/faster_rcnn/600 it., batch 8/resnet_tiny_56/test``."""
    return "/".join(str(record[k]) for k in GROUP_FIELDS)


def _order(variant: str) -> tuple[int, str]:
    names = list(VARIANT_LABELS)
    return (names.index(variant), "") if variant in names else (len(names), variant)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, sorted(seeds)))


def _mean_cell(by_seed: dict[int, dict], base: dict[int, dict], metric: str) -> str:
    """``mean ± std`` of ``metric`` over the seeds of ``by_seed`` (one seed: its value), with
    ``(Δ)`` to the mean of ``base`` over the same seeds when ``base`` has them all."""
    seeds = [s for s in by_seed if metric in by_seed[s]]
    if not seeds:
        return "–"
    mean, std = _mean_std([by_seed[s][metric] for s in seeds])
    cell = f"{mean:.1f} ± {std:.1f}" if len(seeds) > 1 else f"{mean:.1f}"
    if base and all(metric in base.get(s, {}) for s in seeds):
        cell += " " + f"({signed(mean - statistics.fmean(base[s][metric] for s in seeds))})"
    return cell


def _mean_table(runs: dict[str, dict[int, dict]], columns: dict[str, str], bold: bool = False) -> list[str]:
    """Markdown lines (header, then a row per variant of ``runs`` {variant: {seed: values}}): ``columns``
    (value key -> header) as mean ± std over the variant's seeds with the Δ to the baseline of the same seeds."""
    base = runs.get(BASELINE, {})
    lines = ["| run | seeds | " + " | ".join(columns.values()) + " |", "|---|---|" + "---|" * len(columns)]
    for variant in sorted(runs, key=_order):
        label = VARIANT_LABELS.get(variant, variant)
        cells = [_mean_cell(runs[variant], {} if variant == BASELINE else base, c) for c in columns]
        lines.append(f"| {f'**{label}**' if bold else label} | {_seeds(list(runs[variant]))} | "
                     + " | ".join(cells) + " |")
    return lines


def render_table(records: list[dict]) -> str:
    """Markdown table of one group: mean ± std rows per variant, then a row per seed of each variant run
    on more than one seed (a single-seed variant's mean row is its only row)."""
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in records:
        if r["seed"] in runs[r["variant"]]:
            raise ResultsDocError(f"two records for {group_key(r)} / {r['variant']} / seed {r['seed']}.")
        runs[r["variant"]][r["seed"]] = r["bbox"]
    base = runs.get(BASELINE, {})
    per_seed = []
    for variant in sorted(runs, key=_order):
        label = VARIANT_LABELS.get(variant, variant)
        by_seed = runs[variant]
        if len(by_seed) < 2:
            continue
        for seed in sorted(by_seed):
            row = []
            for m in METRICS:
                value = by_seed[seed].get(m)
                ref = base.get(seed, {}).get(m) if variant != BASELINE else None
                row.append("–" if value is None else f"{value:.1f}" + ("" if ref is None else f" ({signed(value - ref)})"))
            per_seed.append((seed, _order(variant), f"| {label} | {seed} | " + " | ".join(row) + " |"))
    rows = [line for _, _, line in sorted(per_seed)]
    return "\n".join([*_mean_table(runs, {m: m for m in METRICS}, bold=True), *rows]) + "\n"


def title(key: str) -> str:
    """``FashionDet test: Faster R-CNN (600 it., batch 8), teacher resnet_tiny_56`` for a student table;
    the teachers' and the teacher's-share tables have keys ``teachers/...`` and ``share/...``."""
    kind, _, rest = key.partition("/")
    if kind == "teachers":
        dataset, split = rest.split("/")
        return f"{dataset} {split} crops: the teachers"
    if kind == "localization":
        return f"{title(rest)}: AP75 and TIDE's errors"
    if kind == "share":
        dataset, family, schedule, split = rest.split("/")
        return f"{dataset} {split}: {FAMILY_LABELS.get(family, family)} ({schedule}), the teacher's share"
    dataset, family, schedule, teacher, split = key.split("/")
    return f"{dataset} {split}: {FAMILY_LABELS.get(family, family)} ({schedule}), teacher {teacher}"


def render_teachers(teachers: list[dict]) -> str:
    """Markdown table of teacher evaluations: parameters, input, top-1 / top-5, top-1 by object size."""
    lines = ["| teacher | config | parameters | input (px) | top-1 | top-5 | top-1 small / medium / large |",
             "|---|---|---|---|---|---|---|"]
    for t in sorted(teachers, key=lambda t: t["classification"]["top1"]):
        c = t["classification"]
        by_size = [c.get(f"top1-{z}", math.nan) for z in SIZES]
        sizes = " / ".join("–" if math.isnan(v) else f"{v:.1f}" for v in by_size)
        lines.append(f"| {t['name']} | `{t['config']}` | {t['parameters'] / 1e6:.2f} M | {t['input_size']} | "
                     f"{c['top1']:.1f} | {c['top5']:.1f} | {sizes} |")
    return "\n".join(lines) + "\n"


def teacher_share(records: list[dict], teachers: list[dict]) -> dict[str, list[tuple[dict, dict]]]:
    """``share/<dataset>/<family>/<schedule>/<split>`` -> [(teacher record, {variant: {seed: bbox}})] for
    every teacher of ``teachers`` (on val, the split teachers are chosen on) that taught full DICOD;
    a group with a single such teacher has no table."""
    by_name = {t["name"]: t for t in teachers if t["split"] == "val"}
    runs: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["teacher"] in by_name and r["dataset"] == by_name[r["teacher"]]["dataset"]:
            runs[tuple(r[k] for k in (*SHARE_FIELDS, "teacher"))][r["variant"]][r["seed"]] = r["bbox"]
    share: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for (*group, teacher), variants in sorted(runs.items()):
        if "dicod" in variants:
            share["share/" + "/".join(map(str, group))].append((by_name[teacher], variants))
    return {k: sorted(v, key=lambda tv: tv[0]["classification"]["top1"]) for k, v in share.items() if len(v) > 1}


def render_share(rows: list[tuple[dict, dict]]) -> str:
    """Markdown table: per teacher (by top-1), full DICOD's AP / AP50 and the difference to the
    baseline over the same seeds."""
    lines = ["| teacher | top-1 (val crops) | seeds | full DICOD AP | AP50 |", "|---|---|---|---|---|"]
    for teacher, variants in rows:
        base, dicod = variants.get(BASELINE, {}), variants["dicod"]
        lines.append(f"| {teacher['name']} | {teacher['classification']['top1']:.1f} | {_seeds(list(dicod))} | "
                     + " | ".join(_mean_cell(dicod, base, m) for m in ("AP", "AP50")) + " |")
    return "\n".join(lines) + "\n"


def _tide_values(record: dict) -> dict[str, float]:
    """AP75 and TIDE's dAP of every error type at every threshold of one record (keys "AP75", "Loc@0.7")."""
    tide = record["tide"]
    out = {"AP75": record["bbox"]["AP75"]} if "AP75" in record["bbox"] else {}
    for error, curve in tide["dAP"].items():
        out.update({f"{error}@{t:g}": value for t, value in zip(tide["fg_threshold"], curve, strict=True)})
    return out


def render_localization(records: list[dict]) -> str:
    """Two markdown tables of one group's runs with a TIDE analysis, mean ± std over seeds, Δ vs the
    baseline of the same seeds (a negative Δ in a TIDE column: fewer errors of that type): AP75 and the
    localization error (the dAP that fixing every localization error would add) at fg IoU
    ``LOC_THRESHOLDS``; then TIDE's six error types at fg IoU 0.5."""
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in records:
        runs[r["variant"]][r["seed"]] = _tide_values(r)
    loc = {"AP75": "AP75", **{f"Loc@{t:g}": f"Loc error, fg IoU {t:g}" for t in LOC_THRESHOLDS}}
    errors = {f"{e}@0.5": e for e in records[0]["tide"]["dAP"]}  # TIDE's error types, in its order
    return "\n".join([*_mean_table(runs, loc), "", "TIDE's error types at fg IoU 0.5 (dAP):", "",
                      *_mean_table(runs, errors)]) + "\n"


def _per_seed(record: dict) -> str:
    """The record's command with its seed written ``N``, so that one line stands for every seed."""
    seed = str(record["seed"])
    return record["command"].replace(f"seed={seed}", "seed=N").replace(f"seed{seed}", "seedN")


def render_blocks(records: list[dict], teachers: list[dict] = ()) -> dict[str, str]:
    """Block name -> its generated text (title line, table, the runs' stack and commands); the
    teachers' tables and the teacher's-share tables when ``teachers`` are given."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[group_key(r)].append(r)
    blocks = {}
    for key, items in sorted(groups.items()):
        stacks = sorted({r["measured_with"] for r in items})
        commands = sorted({_per_seed(r) for r in items if r["variant"] == BASELINE} or {_per_seed(items[0])})
        blocks[key] = (f"**{title(key)}** (AP in %, Δ vs the baseline of the same seeds)\n\n"
                       + render_table(items)
                       + "\nMeasured with " + "; ".join(stacks) + ". Baseline command (seed N): `"
                       + "`; `".join(commands) + "`\n")
        tided = [r for r in items if "tide" in r]
        if tided:
            methods = sorted({r["tide"]["method"] for r in tided})
            blocks[f"localization/{key}"] = (
                f"**{title('localization/' + key)}** (AP75 in %; TIDE dAP in AP points, lower is better; "
                "Δ vs the baseline of the same seeds)\n\n" + render_localization(tided)
                + "\nTIDE: " + "; ".join(methods) + ", `tools/tide_analysis.py --thresholds "
                + " ".join(map(str, LOC_THRESHOLDS)) + "`.\n")
    for dataset, split in sorted({(t["dataset"], t["split"]) for t in teachers}):
        group = [t for t in teachers if (t["dataset"], t["split"]) == (dataset, split)]
        key = f"teachers/{dataset}/{split}"
        blocks[key] = (f"**{title(key)}** (top-1 / top-5 in %)\n\n" + render_teachers(group)
                       + "\nMeasured with " + "; ".join(sorted({t["measured_with"] for t in group}))
                       + ". Command: `" + "`; `".join(sorted({t["command"] for t in group})) + "`\n")
    for key, rows in teacher_share(records, teachers).items():
        blocks[key] = (f"**{title(key)}** (AP in %, Δ vs the baseline of the same seeds; the runs are "
                       "those of the per-teacher tables)\n\n" + render_share(rows))
    return blocks


def summary_blocks(folder: Path = SUMMARY_DIR) -> dict[str, str]:
    """Every generated block of the summary in ``folder`` (students' runs and ``teachers/``)."""
    return render_blocks(load_records(folder), load_records(folder / "teachers", TEACHER_FIELDS))


def render_document(text: str, blocks: dict[str, str]) -> str:
    """``text`` with every generated block replaced; blocks it lacks appended; stale blocks kept empty."""
    seen = set()

    def fill(match: re.Match) -> str:
        key = match["key"]
        seen.add(key)
        return f"<!-- BEGIN GENERATED: {key} -->\n{blocks.get(key, '')}<!-- END GENERATED: {key} -->\n"

    out = BLOCK.sub(fill, text)
    for key in blocks:
        if key not in seen:
            out += f"\n### {title(key)}\n\n<!-- BEGIN GENERATED: {key} -->\n{blocks[key]}<!-- END GENERATED: {key} -->\n"
    return out


def read_split(run: Path, split: str) -> dict[str, float]:
    """COCO numbers of a run on ``split``: val from metrics.json, others from ``<run>/<split>/coco_eval.json``."""
    if split == "val":
        rows = [json.loads(line) for line in (run / "metrics.json").read_text().splitlines() if line.strip()]
        evals = [r for r in rows if "bbox/AP" in r]
        if not evals:
            raise ResultsDocError(f"{run}/metrics.json holds no COCO evaluation.")
        return {k.split("/", 1)[1]: float(v) for k, v in evals[-1].items() if k.split("/", 1)[-1] in METRICS}
    path = run / split / "coco_eval.json"
    if not path.is_file():
        raise ResultsDocError(f"{path} does not exist: evaluate the run on {split} first (tools/demo.py does).")
    return {k: float(v) for k, v in json.loads(path.read_text())["bbox"].items() if k in METRICS}


def read_tide(path: Path) -> dict[str, dict]:
    """Run name -> ``{"method", "fg_threshold", "dAP"}`` from a ``tools/tide_analysis.py`` summary JSON."""
    if not path.is_file():
        raise ResultsDocError(f"{path} does not exist: run tools/tide_analysis.py --out FOLDER first.")
    try:
        summary = json.loads(path.read_text())
        return {name: {"method": summary["method"], "fg_threshold": run["curves"]["fg_threshold"],
                       "dAP": run["curves"]["dAP"]} for name, run in summary["runs"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ResultsDocError(f"{path} is not a summary of tools/tide_analysis.py ({e!r}).") from None


def collect(root: Path, fields: dict, command: str, tide: dict[str, dict] | None = None) -> list[dict]:
    """Records of the runs ``root/<variant>_seed<N>/`` (variant: any name) on ``fields["split"]``; a run
    whose folder name is a run of ``tide`` (:func:`read_tide`) gets that analysis as ``tide``."""
    records = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"(?P<variant>.+)_seed(?P<seed>\d+)", run.name)
        if m is None or not (run / "metrics.json").is_file():
            continue
        records.append({"family": fields["family"], "variant": m["variant"], "seed": int(m["seed"]),
                        **{k: fields[k] for k in ("teacher", "dataset", "split", "schedule", "measured_with")},
                        "bbox": read_split(run, fields["split"]), "command": command.format(run=run, variant=m["variant"], seed=m["seed"])})
        if tide and run.name in tide:
            records[-1]["tide"] = tide[run.name]
    unknown = sorted(set(tide or {}) - {f"{r['variant']}_seed{r['seed']}" for r in records})
    if unknown:
        raise ResultsDocError(f"the TIDE summary names runs that are not under {root}: {', '.join(unknown)}; "
                              "name the TIDE runs as the run folders (<variant>_seed<N>).")
    if not records:
        raise ResultsDocError(f"no run folder <variant>_seed<N> with metrics.json under {root}.")
    return records


def collect_teacher(folder: Path, fields: dict) -> dict:
    """The teacher record of ``folder/classification_eval.json`` (written by train_teacher --eval-only)."""
    path = folder / "classification_eval.json"
    if not path.is_file():
        raise ResultsDocError(f"{path} does not exist: run tools/train_teacher.py --eval-only with "
                              f"train.output_dir={folder} first.")
    ev = json.loads(path.read_text())
    return {"name": fields["name"], "dataset": fields["dataset"], "split": fields["split"],
            **{k: ev[k] for k in ("config", "parameters", "input_size", "classification")},
            "measured_with": fields["measured_with"],
            "command": f"python tools/train_teacher.py --config-file {ev['config']} --eval-only "
                       f"dataloader.test.dataset.names={','.join(ev['datasets'])} train.init_checkpoint=TEACHER"}


def plot_share(rows: list[tuple[dict, dict]], out: Path, heading: str) -> None:
    """Figure: full DICOD's AP (mean ± std over seeds) against its teacher's top-1, one point per
    teacher, with the baseline and the no-teacher control (mean ± std over their seeds) as bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant, color, style in ((BASELINE, "0.85", "-"), ("no_teacher", "C1", "--")):
        runs = {s: b["AP"] for _, v in rows for s, b in v.get(variant, {}).items()}
        if runs:
            mean, std = _mean_std(list(runs.values()))
            ax.axhspan(mean - std, mean + std, color=color, alpha=0.25 if variant != BASELINE else 0.6)
            ax.axhline(mean, color="0.4" if variant == BASELINE else color, ls=style, lw=1,
                       label=f"{VARIANT_LABELS[variant]}, seeds {_seeds(list(runs))}")
    for i, (teacher, variants) in enumerate(rows):  # rows go by top-1: labels alternate above / below
        aps = [b["AP"] for b in variants["dicod"].values()]
        mean, std = _mean_std(aps)
        x = teacher["classification"]["top1"]
        ax.errorbar(x, mean, yerr=std, fmt="o", capsize=4, color="C0")
        ax.annotate(f"{teacher['name']} (n={len(aps)})", (x, mean), textcoords="offset points",
                    xytext=(4 if x < 50 else -6, 6 if i % 2 else -12), ha="left" if x < 50 else "right", fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("teacher top-1 on the val crops (%)")
    ax.set_ylabel("student box AP (%)")
    ax.set_title(heading, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    tmp.replace(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("collect", help="add the runs under ROOT to a summary file")
    c.add_argument("root", type=Path, help="folder of run folders named <variant>_seed<N>")
    c.add_argument("--family", required=True)
    c.add_argument("--teacher", required=True, help="teacher name shown in the table title")
    c.add_argument("--dataset", default="fashiondet")
    c.add_argument("--split", default="test")
    c.add_argument("--schedule", required=True, help="e.g. '600 it., batch 8'")
    c.add_argument("--measured-with", required=True, help="software stack, machine and date")
    c.add_argument("--command", default="see {run}/config.yaml",
                   help="how the runs were made; {run}, {variant} and {seed} are replaced by the run's")
    c.add_argument("--tide", type=Path, help="tide_summary.json of tools/tide_analysis.py over the same runs, "
                   "each named as its run folder (<variant>_seed<N>)")
    c.add_argument("--out", type=Path, required=True, help="summary JSON file (records are added)")
    t = sub.add_parser("collect-teacher", help="add a teacher evaluation to the teachers' summary")
    t.add_argument("folder", type=Path, help="output folder of tools/train_teacher.py --eval-only")
    t.add_argument("--name", required=True, help="the teacher's name in the student records")
    t.add_argument("--dataset", default="fashiondet")
    t.add_argument("--split", default="val")
    t.add_argument("--measured-with", required=True, help="software stack, machine and date")
    t.add_argument("--out", type=Path, default=TEACHER_DIR / "fashiondet.json")
    f = sub.add_parser("plot", help="figure of the students' AP against their teachers' top-1")
    f.add_argument("--dataset", default="fashiondet")
    f.add_argument("--family", required=True)
    f.add_argument("--schedule", required=True)
    f.add_argument("--split", default="test")
    f.add_argument("--summary", type=Path, default=SUMMARY_DIR)
    f.add_argument("--out", type=Path, required=True, help="PNG file")
    r = sub.add_parser("render", help="rewrite the generated blocks of the results document")
    r.add_argument("--summary", type=Path, default=SUMMARY_DIR)
    r.add_argument("--document", type=Path, default=DOCUMENT)
    r.add_argument("--check", action="store_true", help="write nothing; exit 1 if the document differs")
    return parser


def main(argv: list[str] | None = None) -> int:
    from dicod_d2.utils.io import atomic_write_text

    args = build_parser().parse_args(argv)
    try:
        if args.action == "collect":
            new = collect(args.root, vars(args), args.command, read_tide(args.tide) if args.tide else None)
            old = json.loads(args.out.read_text()) if args.out.is_file() else []
            replaced = {(group_key(r), r["variant"], r["seed"]) for r in new}
            kept = [r for r in old if (group_key(r), r["variant"], r["seed"]) not in replaced]
            atomic_write_text(args.out, json.dumps(kept + new, indent=1) + "\n")
            print(f"{len(new)} records written to {args.out}")
            return 0
        if args.action == "collect-teacher":
            new = collect_teacher(args.folder, vars(args))
            old = json.loads(args.out.read_text()) if args.out.is_file() else []
            kept = [t for t in old if (t["name"], t["dataset"], t["split"]) != (new["name"], new["dataset"], new["split"])]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out, json.dumps(kept + [new], indent=1) + "\n")
            print(f"teacher {new['name']} written to {args.out}")
            return 0
        if args.action == "plot":
            key = "share/" + "/".join((args.dataset, args.family, args.schedule, args.split))
            teachers = load_records(args.summary / "teachers", TEACHER_FIELDS)
            rows = teacher_share(load_records(args.summary), teachers).get(key)
            if not rows:
                raise ResultsDocError(f"fewer than two teachers in {args.summary / 'teachers'} taught a full DICOD "
                                      f"run of {args.family} ({args.schedule}, {args.split}).")
            plot_share(rows, args.out, title(key))
            print(f"wrote {args.out}")
            return 0
        text = args.document.read_text() if args.document.is_file() else ""
        rendered = render_document(text, summary_blocks(args.summary))
    except (ResultsDocError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.check:
        if rendered != text:
            print(f"error: {args.document} differs from its summary: run tools/results_doc.py render.",
                  file=sys.stderr)
            return 1
        print(f"{args.document} matches {args.summary}")
        return 0
    atomic_write_text(args.document, rendered)
    print(f"wrote {args.document}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

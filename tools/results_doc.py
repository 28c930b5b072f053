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

Summary: JSON files holding a list of records, one per run and split: ``family``, ``variant``,
``seed``, ``teacher``, ``dataset``, ``split``, ``schedule``, ``bbox`` ({"AP": percent, ...}),
``measured_with`` and ``command``. A ``val`` split is read from the run's ``metrics.json`` (its last
evaluation), any other split from ``<run>/<split>/coco_eval.json`` (what tools/demo.py writes).

Rendering: one table per (dataset, family, schedule, teacher, split), between
``<!-- BEGIN GENERATED: key -->`` and ``<!-- END GENERATED: key -->``: per variant the mean ± std over
its seeds with the difference to the baseline's mean over the same seeds, then one row per seed
(difference to the same seed's baseline). A table without a block in the document is appended at the
end with its block, ready for a hand-written note above it. Variants and families not in the label
tables below render under their own name.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from dicod_d2.modeling.variants import BASELINE, CONTROLS, VARIANTS

REPO = Path(__file__).resolve().parents[1]
SUMMARY_DIR = REPO / "projects/DICOD/results"
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
RECORD_FIELDS = ("family", "variant", "seed", "teacher", "dataset", "split", "schedule", "bbox",
                 "measured_with", "command")
BLOCK = re.compile(r"<!-- BEGIN GENERATED: (?P<key>[^>]+?) -->\n.*?<!-- END GENERATED: (?P=key) -->\n",
                   re.DOTALL)


class ResultsDocError(ValueError):
    """Bad input: an unreadable summary, a record without a field, a run without an evaluation."""


def load_records(folder: Path = SUMMARY_DIR) -> list[dict]:
    """Every record of ``folder/*.json`` (files in name order), each checked for its fields."""
    records = []
    for path in sorted(folder.glob("*.json")):
        try:
            items = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ResultsDocError(f"{path} is not JSON ({e}).") from None
        for i, record in enumerate(items):
            missing = [k for k in RECORD_FIELDS if k not in record]
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


def render_table(records: list[dict]) -> str:
    """Markdown table of one group: mean ± std rows per variant, then a row per seed and variant."""
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in records:
        if r["seed"] in runs[r["variant"]]:
            raise ResultsDocError(f"two records for {group_key(r)} / {r['variant']} / seed {r['seed']}.")
        runs[r["variant"]][r["seed"]] = r["bbox"]
    base = runs.get(BASELINE, {})
    head = ["| run | seeds | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    means, per_seed = [], []
    for variant in sorted(runs, key=_order):
        label = VARIANT_LABELS.get(variant, variant)
        by_seed = runs[variant]
        cells = []
        for m in METRICS:
            seeds = [s for s in by_seed if m in by_seed[s]]
            if not seeds:
                cells.append("–")
                continue
            mean, std = _mean_std([by_seed[s][m] for s in seeds])
            cell = f"{mean:.1f} ± {std:.1f}" if len(seeds) > 1 else f"{mean:.1f}"
            if variant != BASELINE and seeds and all(m in base.get(s, {}) for s in seeds):
                cell += f" ({mean - statistics.fmean(base[s][m] for s in seeds):+.1f})"
            cells.append(cell)
        means.append(f"| **{label}** | {_seeds(list(by_seed))} | " + " | ".join(cells) + " |")
        for seed in sorted(by_seed):
            row = []
            for m in METRICS:
                value = by_seed[seed].get(m)
                ref = base.get(seed, {}).get(m) if variant != BASELINE else None
                row.append("–" if value is None else f"{value:.1f}" + ("" if ref is None else f" ({value - ref:+.1f})"))
            per_seed.append((seed, _order(variant), f"| {label} | {seed} | " + " | ".join(row) + " |"))
    rows = [line for _, _, line in sorted(per_seed)]
    return "\n".join([*head, *means, *rows]) + "\n"


def title(key: str) -> str:
    """``### FashionDet test: Faster R-CNN (600 it., batch 8), teacher resnet_tiny_56``."""
    dataset, family, schedule, teacher, split = key.split("/")
    return f"{dataset} {split}: {FAMILY_LABELS.get(family, family)} ({schedule}), teacher {teacher}"


def _per_seed(record: dict) -> str:
    """The record's command with its seed written ``N``, so that one line stands for every seed."""
    seed = str(record["seed"])
    return record["command"].replace(f"seed={seed}", "seed=N").replace(f"seed{seed}", "seedN")


def render_blocks(records: list[dict]) -> dict[str, str]:
    """Block name -> its generated text (title line, table, the runs' stack and commands)."""
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
    return blocks


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


def collect(root: Path, fields: dict, command: str) -> list[dict]:
    """Records of the runs ``root/<variant>_seed<N>/`` (variant: any name) on ``fields["split"]``."""
    records = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"(?P<variant>.+)_seed(?P<seed>\d+)", run.name)
        if m is None or not (run / "metrics.json").is_file():
            continue
        records.append({"family": fields["family"], "variant": m["variant"], "seed": int(m["seed"]),
                        **{k: fields[k] for k in ("teacher", "dataset", "split", "schedule", "measured_with")},
                        "bbox": read_split(run, fields["split"]), "command": command.format(run=run, variant=m["variant"], seed=m["seed"])})
    if not records:
        raise ResultsDocError(f"no run folder <variant>_seed<N> with metrics.json under {root}.")
    return records


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
    c.add_argument("--out", type=Path, required=True, help="summary JSON file (records are added)")
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
            new = collect(args.root, vars(args), args.command)
            old = json.loads(args.out.read_text()) if args.out.is_file() else []
            replaced = {(group_key(r), r["variant"], r["seed"]) for r in new}
            kept = [r for r in old if (group_key(r), r["variant"], r["seed"]) not in replaced]
            atomic_write_text(args.out, json.dumps(kept + new, indent=1) + "\n")
            print(f"{len(new)} records written to {args.out}")
            return 0
        text = args.document.read_text() if args.document.is_file() else ""
        rendered = render_document(text, render_blocks(load_records(args.summary)))
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

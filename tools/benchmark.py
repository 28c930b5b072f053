#!/usr/bin/env python
"""Measure what DICOD distillation costs: crop op, training step, inference (prints markdown, writes JSON).

Example::

    python tools/benchmark.py --sections crop,step,inference --device cpu --iters 5 --out output/benchmark/cpu.json
    python tools/benchmark.py --quick --out /tmp/benchmark.json       # tiny sizes, seconds
    python tools/benchmark.py --sections export --export-run ssd=configs/fashiondet/ssd/dicod.py,PTH

The ``export`` section (not run by default: it needs trained students) is tools/benchmarking/export.py;
the ``profile`` section (not run by default) ranks the operators of a baseline and a DICOD step
(tools/benchmarking/profile.py)::

    python tools/benchmark.py --sections profile --device cuda --students faster_rcnn --out output/benchmark/profile.json

A random-weight teacher file is written to a temporary folder unless ``--teacher`` names one (its
speed is that of a trained teacher of the same architecture; the JSON says which was used).
The JSON is written atomically; see the package ``tools/benchmarking`` for what each section measures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# the CPU peak-memory measurement uses torch.profiler, whose Kineto backend logs two lines per call
os.environ.setdefault("KINETO_LOG_LEVEL", "99")

import torch  # noqa: E402
from benchmarking import crop, inference, profile, report, step, timing  # noqa: E402
from benchmarking.export import bench_export, format_export_markdown, parse_export_runs  # noqa: E402
from benchmarking.students import DEFAULT_STUDENTS, STUDENTS  # noqa: E402

from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES  # noqa: E402
from dicod_d2.teacher import FrozenTeacher, write_random_teacher  # noqa: E402
from dicod_d2.utils.io import atomic_write_text  # noqa: E402

SECTIONS = ("crop", "step", "inference", "export", "profile")
DEFAULT_SECTIONS = ("crop", "step", "inference")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(DEFAULT_SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--iters", type=int, default=5, help="timed rounds per training-step variant")
    parser.add_argument("--batch-size", type=int, default=4, help="images per training step")
    parser.add_argument("--students", default=",".join(DEFAULT_STUDENTS), help=f"subset of {tuple(STUDENTS)}")
    parser.add_argument("--teacher", default=None, help="teacher file (default: random weights, --teacher-arch)")
    parser.add_argument("--teacher-arch", default="resnet18", help="architecture of the random teacher")
    parser.add_argument("--teacher-size", type=int, default=112, help="input side (px) of the random teacher")
    parser.add_argument("--gt-per-image", default="2,8", help="LO,HI: gt boxes per synthetic training image "
                        "(the step section's K grows with it)")
    parser.add_argument("--loc-cap", type=int, default=16, help="max_loc_positives_per_image of the cap lever")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per crop measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test), not for reporting")
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. 'CPU shared with other jobs')")
    parser.add_argument("--export-run", action="append", default=[], metavar="NAME=CONFIG,CHECKPOINT",
                        help="a trained student for the export section (repeat for several)")
    parser.add_argument("--export-dataset", default=None, help="dataset of the export section's AP and "
                        "latency (default: each config's test set)")
    parser.add_argument("--export-images", type=int, default=20, help="images timed per runtime and thread count")
    parser.add_argument("--export-ap-images", type=int, default=None, help="evaluate the export section's AP "
                        "on the dataset's first N images (default: all)")
    parser.add_argument("--out", default="output/benchmark/benchmark.json", help="JSON output path (written atomically)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    students = [s.strip() for s in args.students.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS)) + sorted(set(students) - set(STUDENTS))
    if unknown:
        print(f"error: unknown section(s)/student(s) {unknown}; sections: {SECTIONS}, "
              f"students: {tuple(STUDENTS)}", file=sys.stderr)
        return 2
    try:
        gt_per_image = tuple(int(v) for v in args.gt_per_image.split(","))
        if len(gt_per_image) != 2 or not 1 <= gt_per_image[0] <= gt_per_image[1]:
            raise ValueError
    except ValueError:
        print(f"error: --gt-per-image must be LO,HI with 1 <= LO <= HI (for example 2,8), got "
              f"{args.gt_per_image!r}.", file=sys.stderr)
        return 2
    try:
        export_runs = parse_export_runs(args.export_run)
        if "export" in sections and not export_runs:
            raise ValueError("the export section needs trained students: --export-run NAME=CONFIG,CHECKPOINT.")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device} but CUDA is not available; use --device cpu.", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    results: dict = {"command": " ".join(["tools/benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
                     "machine": timing.machine_info(args.device), "quick": quick,
                     "memory_method": timing.memory_method(args.device), "note": args.note}
    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = args.teacher or write_random_teacher(
            Path(tmp) / "teacher.pth", FASHION_MNIST_CLASSES, "resnet_tiny" if quick else args.teacher_arch,
            32 if quick else args.teacher_size,
        )
        teacher = FrozenTeacher.from_file(teacher_path).to(args.device)
        results["teacher"] = {
            "arch": teacher.meta.arch, "input_size": teacher.meta.input_size,
            "weights": f"file {args.teacher}" if args.teacher else "random weights (timing only; a trained "
            "teacher of the same architecture runs at the same speed)",
        }
        results["section_wall_s"] = {}
        start = time.perf_counter()

        def done(section: str) -> None:
            """Record the section's wall-clock seconds and report progress on stderr."""
            nonlocal start
            results["section_wall_s"][section] = time.perf_counter() - start
            print(f"[benchmark] {section}: {results['section_wall_s'][section]:.0f} s", file=sys.stderr, flush=True)
            start = time.perf_counter()

        if "crop" in sections:
            results["crop"] = crop.bench_crop_op(
                args.device,
                image_sizes=((64, 96),) if quick else ((800, 1333), (300, 300)),
                box_counts=(4, 16) if quick else (16, 128, 512),
                crop_size=16 if quick else args.teacher_size,
                repeats=1 if quick else args.repeats,
            )
            results["crop_levers"] = crop.bench_crop_levers(
                args.device, teacher,
                num_crops=8 if quick else 128, num_images=2 if quick else 8,
                image_size=(64, 96) if quick else (800, 1333),
                chunk_sizes=(8, 4) if quick else (512, 64, 16), repeats=1 if quick else args.repeats,
            )
            done("crop")
        small = {"image_size": 64, "batch_size": 2} if quick else {}
        if "step" in sections:
            results["step"] = step.bench_train_step(
                args.device, teacher_path, students, iters=1 if quick else args.iters,
                loc_cap=args.loc_cap, gt_per_image=gt_per_image, **(small or {"batch_size": args.batch_size}),
            )
            done("step")
        if "inference" in sections:
            results["inference"] = inference.bench_inference(
                args.device, teacher_path, students, train_iters=1 if quick else 2,
                repeats=1 if quick else 5, **small,
            )
            done("inference")
        if "profile" in sections:
            results["profile"] = profile.profile_train_step(
                args.device, teacher_path, students, steps=1 if quick else 3, warmup=1 if quick else 2,
                gt_per_image=gt_per_image, **(small or {"batch_size": args.batch_size}),
            )
            done("profile")
        if "export" in sections:
            results["export"] = bench_export(export_runs, args.export_dataset, Path(args.out).parent / "export",
                                             latency_images=5 if quick else args.export_images,
                                             ap_limit=8 if quick else args.export_ap_images)
            done("export")
    results["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    print(report.format_markdown(results))
    if "export" in results:
        print(format_export_markdown(results["export"]))
    atomic_write_text(args.out, json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""The main job on the built-in dataset: teacher -> baseline and DICOD students -> COCO AP -> TIDE.

    python tools/demo.py                     # demo split, seed 0 (~30 min on 2 cores, ~20 if the teacher is reused)
    python tools/demo.py --seeds 0 1 2       # the three-seed comparison
    python tools/demo.py --ablation          # also +KD_cls, +loc+KD_loc and the control student
    python tools/demo.py --students faster_rcnn retinanet ssd --seeds 0 1 2 --ablation   # every family
    python tools/demo.py ... --seeds 0 1 2 --ablation --ablation-seeds 0   # single-term students: seed 0
    python tools/demo.py --quick             # tiny split, short schedules (~3 min; what CI runs)

Settings are chosen on FashionDet val; ``<out>/report_<families>.md`` (e.g. ``report_faster_rcnn.md``,
linked from ``<out>/report.md``) reports every number on FashionDet test (val beside it), with the
tables, figures, example detections and commands; a run of other families writes its own report. Finished
stages (teacher, each student) are reused when run again with the same settings.
"""
import argparse
import sys
from pathlib import Path

from dicod_d2.cli import report_user_errors
from dicod_d2.errors import ConfigError

#: --quick: the "quick" FashionDet split and schedules that finish in about 3 minutes
QUICK = {"preset": "quick", "teacher_iters": 150, "student_iters": 80}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny split and short schedules")
    parser.add_argument("--ablation", action="store_true",
                        help="also train the +KD_cls, +loc+KD_loc and control students")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="student seeds")
    parser.add_argument("--ablation-seeds", type=int, nargs="+", default=None,
                        help="with --ablation: train the +KD_cls and +loc+KD_loc students on these of "
                             "the seeds only (default: every seed; the control runs on every seed)")
    parser.add_argument("--students", nargs="+", default=["faster_rcnn"],
                        help="student families: faster_rcnn, retinanet, ssd (default: faster_rcnn)")
    parser.add_argument("--out", default=None,
                        help="output folder (default output/demo, output/demo_quick with --quick)")
    parser.add_argument("--parallel", type=int, default=2, help="students trained side by side")
    parser.add_argument("--student-iters", type=int, default=None,
                        help="override the student configs' train.max_iter")
    parser.add_argument("--teacher-iters", type=int, default=None,
                        help="override the teacher config's train.max_iter")
    return parser


def main(argv=None) -> Path:
    args = build_parser().parse_args(argv)
    from demo_pipeline.pipeline import DemoSettings, run_demo

    import dicod_d2.data  # noqa: F401  registers the built-in datasets

    quick = QUICK if args.quick else {"preset": "demo", "teacher_iters": None, "student_iters": None}
    for key in ("teacher_iters", "student_iters"):
        if getattr(args, key) is not None:
            if getattr(args, key) <= 0:
                raise ConfigError(f"--{key.replace('_', '-')} must be a positive number of iterations")
            quick[key] = getattr(args, key)
    if args.parallel < 1:
        raise ConfigError("--parallel must be at least 1")
    if len(set(args.seeds)) != len(args.seeds):
        raise ConfigError(f"--seeds has repeated values: {args.seeds}")
    out = Path(args.out or ("output/demo_quick" if args.quick else "output/demo"))
    settings = DemoSettings(out_dir=out, seeds=tuple(args.seeds), students=tuple(args.students),
                            ablation=args.ablation,
                            ablation_seeds=tuple(args.ablation_seeds) if args.ablation_seeds else None,
                            parallel=args.parallel, **quick)
    report = run_demo(settings)
    print(f"[demo] report: {report}")
    print(report.read_text().split("## Teachers")[1].split("## TIDE")[0])
    return report


if __name__ == "__main__":
    sys.exit(report_user_errors(main))

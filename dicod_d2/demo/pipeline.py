"""The demo pipeline: FashionDet → teacher → students → COCO AP → TIDE → report.md.

Every stage writes under ``out_dir`` and reuses what an earlier run finished with the same settings
(a ``demo_recipe.sha256`` file beside each result records them).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from ..utils.io import atomic_write_text
from .jobs import Job, python_tool, run_jobs
from .metrics import aggregate, read_run

REPO = Path(__file__).resolve().parents[2]

#: the student variants, in report order, with their config and label
VARIANTS = {
    "baseline": ("configs/fashiondet/faster_rcnn_baseline.py", "baseline"),
    "kd_cls": ("configs/fashiondet/faster_rcnn_kd_cls.py", "+KD_cls"),
    "loc_kd_loc": ("configs/fashiondet/faster_rcnn_loc_kd_loc.py", "+loc_pix+KD_loc"),
    "control": ("configs/fashiondet/faster_rcnn_control.py", "control (label smoothing, no teacher)"),
    "dicod": ("configs/fashiondet/faster_rcnn_dicod.py", "full DICOD"),
}
TEACHER_CONFIG = "configs/teacher/fashiondet/resnet_tiny_56_general_ce_fl.py"


@dataclasses.dataclass
class DemoSettings:
    """What one demo run does (``tools/demo.py`` builds it from its options)."""

    out_dir: Path
    preset: str  # FashionDet preset: "demo" (2500/1000 images) or "quick"
    seeds: tuple[int, ...] = (0,)
    ablation: bool = False  # also the +KD_cls, +loc+KD_loc and control students
    student_iters: int | None = None  # None: the configs' own schedule
    teacher_iters: int | None = None
    parallel: int = 2  # students trained side by side

    @property
    def variants(self) -> list[str]:
        return list(VARIANTS) if self.ablation else ["baseline", "dicod"]

    @property
    def dataset_prefix(self) -> str:
        return "fashiondet" if self.preset == "demo" else f"fashiondet_{self.preset}"


def run_name(variant: str, seed) -> str:
    """``<variant>_seed<seed>``: a student run's folder and its name in the TIDE analysis."""
    return f"{variant}_seed{seed}"


def _recipe_hash(*parts) -> str:
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()


def _same_recipe(folder: Path, digest: str, result: str) -> bool:
    marker = folder / "demo_recipe.sha256"
    return (folder / result).is_file() and marker.is_file() and marker.read_text() == digest


def _file_text(path: str) -> str:
    return (REPO / path).read_text()


def dataset_overrides(s: DemoSettings) -> list[str]:
    return [f"dataloader.train.dataset.names={s.dataset_prefix}_train",
            f"dataloader.test.dataset.names={s.dataset_prefix}_val"]


def make_data(s: DemoSettings) -> Path:
    """Generate FashionDet at the demo's size (a no-op when it exists); returns its folder."""
    from ..data.datasets import get_data_root
    from ..data.fashiondet import PRESET_DIRNAMES, generate_fashiondet

    folder = get_data_root() / PRESET_DIRNAMES[s.preset]
    t0 = time.time()
    generate_fashiondet(folder, s.preset, seed=0)
    print(f"[data] FashionDet '{s.preset}' at {folder} ({time.time() - t0:.0f} s)", flush=True)
    return folder


def teacher_overrides(s: DemoSettings) -> list[str]:
    """Command-line overrides of the teacher run (data split, output folder, iterations)."""
    overrides = dataset_overrides(s) + [f"train.output_dir={s.out_dir / 'teacher'}"]
    if s.teacher_iters:
        overrides.append(f"train.max_iter={s.teacher_iters}")
    return overrides


def train_teacher(s: DemoSettings) -> Path:
    """Train the classification teacher unless one of the same recipe exists; returns teacher.pth."""
    folder = s.out_dir / "teacher"
    overrides = teacher_overrides(s)
    digest = _recipe_hash(_file_text(TEACHER_CONFIG), overrides)
    argv = python_tool("train_teacher.py", "--config-file", TEACHER_CONFIG, *overrides)
    job = Job("teacher", argv, folder, s.teacher_iters or _config_max_iter(TEACHER_CONFIG),
              done=lambda: _same_recipe(folder, digest, "teacher.pth"),
              on_success=lambda: atomic_write_text(folder / "demo_recipe.sha256", digest))
    # one torch thread: the classifier is small and its two DataLoader workers need the other
    # cores (2 threads were ~5x slower per iteration on a 2-core machine)
    run_jobs([job], parallel=1, stage="teacher", threads_per_job=1)
    return folder / "teacher.pth"


def _config_max_iter(config: str) -> int:
    from ..config.lazy import load_config

    return int(load_config(REPO / config).train.max_iter)


def student_dir(s: DemoSettings, variant: str, seed) -> Path:
    return s.out_dir / "students" / run_name(variant, seed)


def student_overrides(s: DemoSettings, variant: str, seed, teacher: Path) -> list[str]:
    """Command-line overrides of one student run; only the teacher file differs between variants."""
    overrides = dataset_overrides(s) + [f"train.seed={seed}",
                                        f"train.output_dir={student_dir(s, variant, seed)}"]
    if variant not in ("baseline", "control"):
        overrides.append(f"model.distiller.teacher.path={teacher}")
    if s.student_iters:
        overrides += [f"train.max_iter={s.student_iters}", f"train.eval_period={s.student_iters}"]
    return overrides


def student_digest(config: str, overrides: list[str], teacher_sha: str) -> str:
    """Recipe digest of a student run: config text, overrides and, when the run uses the teacher,
    the SHA-256 of the teacher file's bytes."""
    uses_teacher = any(o.startswith("model.distiller.teacher.path=") for o in overrides)
    return _recipe_hash(_file_text(config), overrides, teacher_sha if uses_teacher else "")


def train_students(s: DemoSettings, teacher: Path) -> dict[str, list[Path]]:
    """Train every (variant, seed) student, ``s.parallel`` at a time; returns their folders.

    A run is reused when its folder holds a final model trained with the same config text,
    overrides and (for distilled variants) teacher file bytes.
    """
    jobs, folders = [], {}
    teacher_sha = hashlib.sha256(teacher.read_bytes()).hexdigest()
    for seed in s.seeds:
        for variant in s.variants:
            config = VARIANTS[variant][0]
            folder = student_dir(s, variant, seed)
            overrides = student_overrides(s, variant, seed, teacher)
            digest = student_digest(config, overrides, teacher_sha)
            argv = python_tool("lazyconfig_train_net.py", "--config-file", config, *overrides)
            jobs.append(Job(
                f"{variant} (seed {seed})", argv, folder, s.student_iters or _config_max_iter(config),
                done=lambda f=folder, d=digest: _same_recipe(f, d, "model_final.pth"),
                on_success=lambda f=folder, d=digest: atomic_write_text(f / "demo_recipe.sha256", d),
            ))
            folders.setdefault(variant, []).append(folder)
    run_jobs(jobs, parallel=s.parallel, stage="students")
    return folders


def evaluate(folders: dict[str, list[Path]]) -> dict[str, dict]:
    """COCO numbers of every run (the final evaluation of its EvalHook), aggregated over seeds."""
    return aggregate({v: [read_run(f) for f in fs] for v, fs in folders.items()})


def teacher_top1(teacher: Path) -> tuple[float | None, float | None]:
    """Top-1 / top-5 (%) on the val crops recorded in the teacher file by its export hook."""
    from ..teacher.teacher_file import read_teacher_file

    _, meta, _ = read_teacher_file(teacher)
    return meta.recipe.get("top1"), meta.recipe.get("top5")


def tide(s: DemoSettings, folders: dict[str, list[Path]]) -> dict:
    """TIDE analysis of every student run (``<variant>_seed<k>``) on the val split."""
    from detectron2.data import MetadataCatalog

    from ..evaluation.tide_analysis import analyze

    gt_json = MetadataCatalog.get(f"{s.dataset_prefix}_val").json_file
    dets = {run_name(v, seed): folder / "coco_instances_results.json"
            for v, fs in folders.items() for seed, folder in zip(s.seeds, fs, strict=True)}
    return analyze(gt_json, dets, s.out_dir / "tide", save_pdf=False)


def examples(s: DemoSettings, folders: dict[str, list[Path]]) -> list[Path]:
    """Validation images with the baseline's and full DICOD's detections (first seed) side by side."""
    from .visualize import load_detector, side_by_side

    models = {}
    for variant in ("baseline", "dicod"):
        folder = folders[variant][0]
        models[VARIANTS[variant][1]] = load_detector(
            str(REPO / VARIANTS[variant][0]), str(folder / "model_final.pth"), dataset_overrides(s))
    return side_by_side(models, f"{s.dataset_prefix}_val", s.out_dir / "examples", num_images=3,
                        score_thresh=0.3)


def commands(s: DemoSettings, teacher: Path) -> list[str]:
    """The commands that reproduce the demo's runs by hand (``$SEED``: each of ``s.seeds``)."""
    lines = [f"python tools/make_fashiondet.py --preset {s.preset}",
             f"python tools/train_teacher.py --config-file {TEACHER_CONFIG} "
             + " ".join(teacher_overrides(s))]
    for variant in s.variants:
        overrides = " ".join(student_overrides(s, variant, "$SEED", teacher))
        lines.append(f"python tools/lazyconfig_train_net.py --config-file {VARIANTS[variant][0]} {overrides}")
    return lines


def run_demo(s: DemoSettings) -> Path:
    """Every stage of the demo; returns the path of ``report.md``."""
    from .report import plot_ap_vs_iou, write_report

    seconds, t0 = {}, time.time()

    def lap(stage: str) -> None:
        nonlocal t0
        seconds[stage] = time.time() - t0
        t0 = time.time()

    make_data(s)
    lap("data")
    teacher = train_teacher(s)
    top1, top5 = teacher_top1(teacher)
    print(f"[teacher] top-1 {top1:.2f}%, top-5 {top5:.2f}% on the val crops ({teacher})", flush=True)
    lap("teacher")
    folders = train_students(s, teacher)
    lap("students")
    agg = evaluate(folders)
    labels = {v: VARIANTS[v][1] for v in s.variants}
    figure = s.out_dir / "ap_vs_iou.png"
    plot_ap_vs_iou(agg, s.variants, labels, figure)
    summary = tide(s, folders)
    lap("evaluation + TIDE")
    pictures = examples(s, folders)
    lap("examples")
    report = s.out_dir / "report.md"
    write_report(
        report,
        title="dicod-d2 demo: DICOD vs baseline on FashionDet",
        settings=[f"FashionDet preset '{s.preset}' ({s.dataset_prefix}_train / _val)",
                  f"seeds {', '.join(map(str, s.seeds))}; students trained {s.parallel} at a time",
                  f"student configs: {', '.join(VARIANTS[v][0] for v in s.variants)}",
                  f"teacher config: {TEACHER_CONFIG}"],
        teacher={"top1": top1, "top5": top5, "path": teacher},
        agg=agg, order=s.variants, labels=labels, tide_summary=summary,
        figures={"ap_vs_iou": figure, "tide": summary["files"]["figure_png"]},
        examples=pictures, commands=commands(s, teacher), stage_seconds=seconds,
    )
    atomic_write_text(s.out_dir / "results.json", json.dumps(
        {"teacher": {"top1": top1, "top5": top5}, "students": agg, "seconds": seconds}, indent=2))
    return report

"""The demo pipeline: FashionDet → teacher → students → COCO AP → TIDE → report.md.

Every stage writes under ``out_dir`` and reuses what an earlier run finished with the same settings
(a ``demo_recipe.sha256`` file beside each result records them).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

from ..utils.io import atomic_write_text
from .jobs import Job, python_tool, run_checked, run_jobs
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


def train_teacher(s: DemoSettings) -> Path:
    """Train the classification teacher unless one of the same recipe exists; returns teacher.pth."""
    folder = s.out_dir / "teacher"
    overrides = dataset_overrides(s) + [f"train.output_dir={folder}"]
    if s.teacher_iters:
        overrides.append(f"train.max_iter={s.teacher_iters}")
    digest = _recipe_hash(_file_text(TEACHER_CONFIG), overrides)
    argv = python_tool("train_teacher.py", "--config-file", TEACHER_CONFIG, *overrides)
    job = Job("teacher", argv, folder, s.teacher_iters or 0,
              done=lambda: _same_recipe(folder, digest, "teacher.pth"))
    job.max_iter = job.max_iter or _config_max_iter(TEACHER_CONFIG)
    run_jobs([job], parallel=1, stage="teacher", threads_per_job=os.cpu_count())
    atomic_write_text(folder / "demo_recipe.sha256", digest)
    return folder / "teacher.pth"


def _config_max_iter(config: str) -> int:
    from ..config.lazy import load_config

    return int(load_config(REPO / config).train.max_iter)


def student_dir(s: DemoSettings, variant: str, seed: int) -> Path:
    return s.out_dir / "students" / f"{variant}_seed{seed}"


def train_students(s: DemoSettings, teacher: Path) -> dict[str, list[Path]]:
    """Train every (variant, seed) student, ``s.parallel`` at a time; returns their folders."""
    jobs, folders = [], {}
    for seed in s.seeds:
        for variant in s.variants:
            config, _ = VARIANTS[variant]
            folder = student_dir(s, variant, seed)
            overrides = dataset_overrides(s) + [f"train.seed={seed}", f"train.output_dir={folder}"]
            if variant not in ("baseline", "control"):
                overrides.append(f"model.distiller.teacher.path={teacher}")
            if s.student_iters:
                overrides += [f"train.max_iter={s.student_iters}",
                              f"train.eval_period={s.student_iters}"]
            digest = _recipe_hash(_file_text(config), overrides,
                                  teacher.stat().st_mtime if variant != "baseline" else "")
            argv = python_tool("lazyconfig_train_net.py", "--config-file", config, *overrides)
            jobs.append(Job(f"{variant} (seed {seed})", argv, folder,
                            s.student_iters or _config_max_iter(config),
                            done=lambda f=folder, d=digest: _same_recipe(f, d, "model_final.pth")))
            jobs[-1].digest = digest
            folders.setdefault(variant, []).append(folder)
    run_jobs(jobs, parallel=s.parallel, stage="students")
    for job in jobs:
        atomic_write_text(job.output_dir / "demo_recipe.sha256", job.digest)
    return folders


def evaluate(folders: dict[str, list[Path]]) -> dict[str, dict]:
    """COCO numbers of every run (the final evaluation of its EvalHook), aggregated over seeds."""
    return aggregate({v: [read_run(f) for f in fs] for v, fs in folders.items()})


def commands(s: DemoSettings, teacher: Path) -> list[str]:
    """The commands that reproduce the demo's runs by hand."""
    ov = " ".join(dataset_overrides(s))
    lines = [f"python tools/make_fashiondet.py --preset {s.preset}",
             f"python tools/train_teacher.py --config-file {TEACHER_CONFIG} {ov} "
             f"train.output_dir={teacher.parent}"]
    for variant in s.variants:
        config, _ = VARIANTS[variant]
        extra = "" if variant in ("baseline", "control") else f" model.distiller.teacher.path={teacher}"
        lines.append(f"python tools/lazyconfig_train_net.py --config-file {config} {ov} "
                     f"train.seed=SEED train.output_dir={s.out_dir}/students/{variant}_seedSEED{extra}")
    return lines

"""The demo pipeline: FashionDet → teacher → students → COCO AP → TIDE → report.md.

Every stage writes under ``out_dir`` and reuses what an earlier run finished with the same settings
(a ``demo_recipe.sha256`` file beside each result records them). The report of a run and its
files (TIDE, examples, ONNX export, results) are named after its student families, e.g.
``report_faster_rcnn.md`` or ``report_retinanet-ssd.md`` (:func:`report_paths`), so that a run of
other families never overwrites them; ``report.md`` links to every report of the folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from dicod_d2.errors import ConfigError
from dicod_d2.modeling.variants import VARIANTS as PAPER_VARIANTS
from dicod_d2.utils.io import atomic_write_text

from .jobs import Job, python_tool, run_jobs
from .metrics import aggregate, read_run

REPO = Path(__file__).resolve().parents[2]

#: the student families of the demo (FashionDet configs ``configs/fashiondet/<student>/<variant>.py``)
STUDENTS = ("faster_rcnn", "retinanet", "ssd")
#: the demo's variants, in report order, with their label: the paper's (``dicod_d2.modeling.variants``)
#: and the label-smoothing control of the ablation
#: the single-term students of the ablation (``ablation_seeds`` may train them on fewer seeds)
SINGLE_TERM = ("kd_cls", "loc_kd_loc")
VARIANTS = {
    **{v: PAPER_VARIANTS[v].label for v in ("baseline", *SINGLE_TERM)},
    "control": "control (label smoothing, no teacher)",
    "dicod": PAPER_VARIANTS["dicod"].label,
}
#: teacher recipes (paper §4.1: the teacher's augmentation and loss follow its student's)
TEACHER_CONFIGS = {
    "general": "configs/teacher/fashiondet/efficientnet_lite0_56_general_ce_fl.py",
    "ssd": "configs/teacher/fashiondet/resnet_tiny_56_ssd_ce.py",
}
STUDENT_TEACHER = {"faster_rcnn": "general", "retinanet": "general", "ssd": "ssd"}
#: teacher recipe -> the teacher's name in the results summary (projects/DICOD/results/*.json)
REFERENCE_TEACHER = {"general": "efficientnet_lite0_56", "ssd": "resnet_tiny_56"}
#: the split where settings were chosen, and the one the report's numbers come from
CHOICE_SPLIT, REPORT_SPLIT = "val", "test"


def student_config(student: str, variant: str) -> str:
    """The FashionDet config of one student family and variant (a path relative to the repository)."""
    return f"configs/fashiondet/{student}/{variant}.py"


@dataclasses.dataclass
class DemoSettings:
    """What one demo run does (``tools/demo.py`` builds it from its options)."""

    out_dir: Path
    preset: str  # FashionDet preset: "demo" (2500/1000/1000 images) or "quick"
    seeds: tuple[int, ...] = (0,)
    students: tuple[str, ...] = ("faster_rcnn",)
    ablation: bool = False  # also the +KD_cls, +loc+KD_loc and control students
    #: seeds of the single-term students (+KD_cls, +loc+KD_loc); None: every seed. The control,
    #: the baseline and full DICOD always run on every seed (the target compares them).
    ablation_seeds: tuple[int, ...] | None = None
    student_iters: int | None = None  # None: the configs' own schedule
    teacher_iters: int | None = None
    parallel: int = 2  # students trained side by side

    def __post_init__(self):
        unknown = [st for st in self.students if st not in STUDENTS]
        if unknown or not self.students:
            raise ConfigError(f"unknown students {unknown or '(none)'}; choose among {list(STUDENTS)}.")
        if self.ablation_seeds is not None:
            if not self.ablation:
                raise ConfigError("--ablation-seeds needs --ablation (it picks the seeds of its single-term students).")
            outside = sorted(set(self.ablation_seeds) - set(self.seeds))
            if outside or not self.ablation_seeds:
                raise ConfigError(f"--ablation-seeds {outside or '(none)'} not among --seeds {list(self.seeds)}; "
                                  "give a subset of the seeds.")

    @property
    def variants(self) -> list[str]:
        return list(VARIANTS) if self.ablation else ["baseline", "dicod"]

    def runs(self) -> list[tuple[str, str, int]]:
        """Every ``(student, variant, seed)`` the demo trains, seed by seed."""
        return [(student, variant, seed) for seed in self.seeds for student in self.students
                for variant in self.variants
                if variant not in SINGLE_TERM or self.ablation_seeds is None or seed in self.ablation_seeds]

    @property
    def recipes(self) -> list[str]:
        """The teacher recipes the students need, in ``TEACHER_CONFIGS`` order."""
        return [r for r in TEACHER_CONFIGS if any(STUDENT_TEACHER[st] == r for st in self.students)]

    @property
    def dataset_prefix(self) -> str:
        return "fashiondet" if self.preset == "demo" else f"fashiondet_{self.preset}"


def report_paths(s: DemoSettings) -> dict:
    """The files of the report of ``s``'s student families: ``report``, ``results``, ``tide``,
    ``examples`` and ``deploy`` (folders), and ``ap_vs_iou`` (student -> figure), each named
    with the families joined by "-"."""
    key = "-".join(s.students)
    return {"report": s.out_dir / f"report_{key}.md", "results": s.out_dir / f"results_{key}.json",
            "tide": s.out_dir / f"tide_{key}", "examples": s.out_dir / f"examples_{key}",
            "deploy": s.out_dir / f"deploy_{key}",
            "ap_vs_iou": {st: s.out_dir / f"ap_vs_iou_{key}_{st}.png" for st in s.students}}


def write_report_index(out_dir: Path) -> Path:
    """``out_dir/report.md``: a link to every ``report_<families>.md`` of ``out_dir``."""
    reports = sorted(out_dir.glob("report_*.md"))
    lines = ["# dicod-d2 demo reports", "", "One report per set of student families (`tools/demo.py --students ...`):", "",
             *[f"- [{p.stem.removeprefix('report_').replace('-', ', ')}]({p.name})" for p in reports], ""]
    index = out_dir / "report.md"
    atomic_write_text(index, "\n".join(lines))
    return index


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


def dataset_overrides(s: DemoSettings, split: str = CHOICE_SPLIT) -> list[str]:
    """Train on ``<prefix>_train``; evaluate on ``<prefix>_<split>`` (val during training)."""
    return [f"dataloader.train.dataset.names={s.dataset_prefix}_train",
            f"dataloader.test.dataset.names={s.dataset_prefix}_{split}"]


def make_data(s: DemoSettings) -> Path:
    """Generate FashionDet at the demo's size (a no-op when it exists); returns its folder."""
    from dicod_d2.data.datasets import get_data_root
    from dicod_d2.data.fashiondet import PRESET_DIRNAMES, generate_fashiondet

    folder = get_data_root() / PRESET_DIRNAMES[s.preset]
    t0 = time.time()
    generate_fashiondet(folder, s.preset, seed=0)
    print(f"[data] FashionDet '{s.preset}' at {folder} ({time.time() - t0:.0f} s)", flush=True)
    return folder


def teacher_dir(s: DemoSettings, recipe: str) -> Path:
    return s.out_dir / ("teacher" if recipe == "general" else f"teacher_{recipe}")


def teacher_overrides(s: DemoSettings, recipe: str) -> list[str]:
    """Command-line overrides of a teacher run (data split, output folder, iterations)."""
    overrides = dataset_overrides(s) + [f"train.output_dir={teacher_dir(s, recipe)}"]
    if s.teacher_iters:
        overrides.append(f"train.max_iter={s.teacher_iters}")
    return overrides


def train_teachers(s: DemoSettings) -> dict[str, Path]:
    """Train each teacher recipe the students need unless one of the same recipe exists;
    returns ``{recipe: teacher.pth}``."""
    jobs, paths = [], {}
    for recipe in s.recipes:
        config, folder, overrides = TEACHER_CONFIGS[recipe], teacher_dir(s, recipe), teacher_overrides(s, recipe)
        digest = _recipe_hash(_file_text(config), overrides)
        jobs.append(Job(
            f"teacher ({recipe})", python_tool("train_teacher.py", "--config-file", config, *overrides),
            folder, s.teacher_iters or _config_max_iter(config),
            done=lambda f=folder, d=digest: _same_recipe(f, d, "teacher.pth"),
            on_success=lambda f=folder, d=digest: atomic_write_text(f / "demo_recipe.sha256", d),
        ))
        paths[recipe] = folder / "teacher.pth"
    # one torch thread: the classifier is small and its two DataLoader workers need the other
    # cores (2 threads were ~5x slower per iteration on a 2-core machine)
    run_jobs(jobs, parallel=1, stage="teacher", threads_per_job=1)
    return paths


def _config_max_iter(config: str) -> int:
    from dicod_d2.config.lazy import load_config

    return int(load_config(REPO / config).train.max_iter)


def student_dir(s: DemoSettings, student: str, variant: str, seed) -> Path:
    return s.out_dir / "students" / student / run_name(variant, seed)


def student_overrides(s: DemoSettings, student: str, variant: str, seed, teacher: Path) -> list[str]:
    """Command-line overrides of one student run; only the teacher file differs between variants."""
    overrides = dataset_overrides(s) + [f"train.seed={seed}",
                                        f"train.output_dir={student_dir(s, student, variant, seed)}"]
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


Runs = dict[str, dict[str, dict[int, Path]]]  # student -> variant -> seed -> run folder


def train_students(s: DemoSettings, teachers: dict[str, Path]) -> Runs:
    """Train every (student, variant, seed), ``s.parallel`` at a time; returns their folders.

    A run is reused when its folder holds a final model trained with the same config text,
    overrides and (for distilled variants) teacher file bytes.
    """
    jobs, runs = [], {}
    shas = {r: hashlib.sha256(t.read_bytes()).hexdigest() for r, t in teachers.items()}
    for student, variant, seed in s.runs():
        recipe = STUDENT_TEACHER[student]
        config = student_config(student, variant)
        folder = student_dir(s, student, variant, seed)
        overrides = student_overrides(s, student, variant, seed, teachers[recipe])
        digest = student_digest(config, overrides, shas[recipe])
        argv = python_tool("lazyconfig_train_net.py", "--config-file", config, *overrides)
        jobs.append(Job(
            f"{student} {variant} (seed {seed})", argv, folder,
            s.student_iters or _config_max_iter(config),
            done=lambda f=folder, d=digest: _same_recipe(f, d, "model_final.pth"),
            on_success=lambda f=folder, d=digest: atomic_write_text(f / "demo_recipe.sha256", d),
        ))
        runs.setdefault(student, {}).setdefault(variant, {})[seed] = folder
    run_jobs(jobs, parallel=s.parallel, stage="students")
    return runs


def evaluate_split(s: DemoSettings, student: str, variant: str, folder: Path, split: str) -> dict:
    """COCO numbers of a run's final model on ``<prefix>_<split>``, evaluated once and cached in
    ``<folder>/<split>/`` (with ``coco_instances_results.json``) for that checkpoint's bytes.

    The evaluation is the training tool's own (:func:`dicod_d2.engine.train_loop.do_test`)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import instantiate

    from dicod_d2.engine.train_loop import do_test
    from dicod_d2.inference.student import inference_config

    checkpoint = folder / "model_final.pth"
    out = folder / split
    cache = out / "coco_eval.json"
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("checkpoint_sha256") == sha:
            return cached["bbox"]
    cfg = inference_config(str(REPO / student_config(student, variant)),
                           [*dataset_overrides(s, split), f"train.output_dir={out}", "train.device=cpu"])
    model = instantiate(cfg.model).eval()
    DetectionCheckpointer(model).load(str(checkpoint))
    bbox = dict(do_test(cfg, model)["bbox"])  # unreadable images skipped and counted, as in training
    atomic_write_text(cache, json.dumps({"checkpoint_sha256": sha, "bbox": bbox}, indent=2))
    return bbox


def evaluate(s: DemoSettings, runs: Runs) -> dict[str, dict[str, dict]]:
    """Per student, ``{split: aggregated COCO numbers}`` for the choice split (the run's final
    evaluation) and the report split (evaluated here), mean ± std over seeds."""
    out = {}
    for student, variants in runs.items():
        val = {v: {seed: read_run(f) for seed, f in fs.items()} for v, fs in variants.items()}
        test = {v: {seed: {**val[v][seed], "bbox": evaluate_split(s, student, v, f, REPORT_SPLIT)}
                    for seed, f in fs.items()} for v, fs in variants.items()}
        out[student] = {CHOICE_SPLIT: aggregate(val), REPORT_SPLIT: aggregate(test)}
    return out


def teacher_top1(teacher: Path) -> tuple[float | None, float | None]:
    """Top-1 / top-5 (%) on the val crops recorded in the teacher file by its export hook."""
    from dicod_d2.teacher.teacher_file import read_teacher_file

    _, meta, _ = read_teacher_file(teacher)
    return meta.recipe.get("top1"), meta.recipe.get("top5")


def tide(s: DemoSettings, runs: Runs) -> dict:
    """TIDE analysis of every student run (``<student>/<variant>_seed<k>``) on the report split."""
    from detectron2.data import MetadataCatalog
    from tide_report import write_analysis

    gt_json = MetadataCatalog.get(f"{s.dataset_prefix}_{REPORT_SPLIT}").json_file
    dets = {f"{student}/{folder.name}": folder / REPORT_SPLIT / "coco_instances_results.json"
            for student, variants in runs.items() for fs in variants.values() for folder in fs.values()}
    return write_analysis(gt_json, dets, report_paths(s)["tide"], save_pdf=False, cache=True)  # reruns reuse each run's


def examples(s: DemoSettings, runs: Runs) -> list[Path]:
    """Test images with the baseline's and full DICOD's detections (first student and seed) side by side."""
    from dicod_d2.inference.student import load_student

    from .visualize import side_by_side

    student = s.students[0]
    students = {}
    for variant in ("baseline", "dicod"):
        folder = runs[student][variant][s.seeds[0]]
        students[VARIANTS[variant]] = load_student(
            REPO / student_config(student, variant), folder / "model_final.pth",
            overrides=dataset_overrides(s, REPORT_SPLIT))
    return side_by_side(students, f"{s.dataset_prefix}_{REPORT_SPLIT}", report_paths(s)["examples"], num_images=3)


#: images of the report split on which the deployable student's ONNX Runtime AP is compared with PyTorch's
DEPLOY_AP_IMAGES = 200


def deployable(s: DemoSettings, runs: Runs) -> str:
    """The full DICOD student (first family and seed) exported to ONNX: one report line with its ONNX
    Runtime AP next to PyTorch's (first ``DEPLOY_AP_IMAGES`` test images) and the CPU latency."""
    from dicod_d2.export.deployable import deployable_student

    from .report import deployable_line

    student = s.students[0]
    folder = runs[student]["dicod"][s.seeds[0]]
    result = deployable_student(
        str(REPO / student_config(student, "dicod")), str(folder / "model_final.pth"),
        f"{s.dataset_prefix}_{REPORT_SPLIT}", report_paths(s)["deploy"], threads=(1,), latency_images=20,
        ap_limit=DEPLOY_AP_IMAGES, overrides=dataset_overrides(s, REPORT_SPLIT),
    )
    return (f"{student}, {run_name('dicod', s.seeds[0])}, AP on the first {DEPLOY_AP_IMAGES} images: "
            + deployable_line(result, threads=1))


def commands(s: DemoSettings, teachers: dict[str, Path]) -> list[str]:
    """The commands that reproduce the demo's runs by hand (``$SEED``: each of ``s.seeds``)."""
    lines = [f"python tools/make_fashiondet.py --preset {s.preset}"]
    for recipe in s.recipes:
        lines.append(f"python tools/train_teacher.py --config-file {TEACHER_CONFIGS[recipe]} "
                     + " ".join(teacher_overrides(s, recipe)))
    for student in s.students:
        for variant in s.variants:
            overrides = " ".join(student_overrides(s, student, variant, "$SEED",
                                                   teachers[STUDENT_TEACHER[student]]))
            lines.append(f"python tools/lazyconfig_train_net.py --config-file "
                         f"{student_config(student, variant)} {overrides}")
    return lines


def reference_runs(s: DemoSettings) -> dict[str, list[dict]]:
    """Student -> the project's reference records (tools/results_doc.py) of the configs and teacher
    this demo trains, on the report split; none when the demo's data or schedules are not the
    reference's (another preset, or iterations overridden)."""
    from results_doc import load_records

    if s.preset != "demo" or s.student_iters is not None or s.teacher_iters is not None:
        return {}
    records = load_records()
    return {st: [r for r in records if r["family"] == st and r["dataset"] == "fashiondet"
                 and r["split"] == REPORT_SPLIT and r["teacher"] == REFERENCE_TEACHER[STUDENT_TEACHER[st]]]
            for st in s.students}


def run_demo(s: DemoSettings) -> Path:
    """Every stage of the demo; returns the path of its report (``report_<families>.md``, linked
    from ``report.md``)."""
    from .report import plot_ap_vs_iou, write_report

    seconds, t0 = {}, time.time()

    def lap(stage: str) -> None:
        nonlocal t0
        seconds[stage] = time.time() - t0
        t0 = time.time()

    make_data(s)
    lap("data")
    teachers = train_teachers(s)
    teacher_info = {}
    for recipe, path in teachers.items():
        top1, top5 = teacher_top1(path)
        teacher_info[recipe] = {"top1": top1, "top5": top5, "path": path}
        print(f"[teacher] {recipe}: top-1 {top1:.2f}%, top-5 {top5:.2f}% on the val crops ({path})", flush=True)
    lap("teacher")
    runs = train_students(s, teachers)
    lap("students")
    agg = evaluate(s, runs)
    figures = {}
    for student in s.students:
        figures[student] = report_paths(s)["ap_vs_iou"][student]
        plot_ap_vs_iou(agg[student][REPORT_SPLIT], s.variants, VARIANTS, figures[student],
                       title=f"{student}: COCO AP against the IoU threshold (FashionDet {REPORT_SPLIT})")
    summary = tide(s, runs)
    lap("evaluation + TIDE")
    pictures = examples(s, runs)
    lap("examples")
    deploy = deployable(s, runs)
    print(f"[deploy] {deploy}", flush=True)
    lap("ONNX export")
    paths = report_paths(s)
    report = paths["report"]
    write_report(
        report,
        title="dicod-d2 demo: DICOD vs baseline on FashionDet",
        settings=[f"FashionDet preset '{s.preset}': trained on {s.dataset_prefix}_train; settings chosen "
                  f"on {s.dataset_prefix}_{CHOICE_SPLIT}; **numbers reported on {s.dataset_prefix}_{REPORT_SPLIT}**, "
                  "a split that played no part in any choice",
                  f"seeds {', '.join(map(str, s.seeds))}"
                  + (f" (single-term students: {', '.join(map(str, s.ablation_seeds))})" if s.ablation_seeds else "")
                  + f"; students trained {s.parallel} at a time",
                  "student configs: " + ", ".join(student_config(st, v) for st in s.students for v in s.variants),
                  "teacher configs: " + ", ".join(TEACHER_CONFIGS[r] for r in s.recipes)],
        teachers=teacher_info, agg=agg, order=s.variants, labels=VARIANTS,
        splits=(REPORT_SPLIT, CHOICE_SPLIT), tide_summary=summary,
        figures={"ap_vs_iou": figures, "tide": summary["files"]["figure_png"]},
        examples=pictures, deployable=deploy, commands=commands(s, teachers), stage_seconds=seconds,
        reference=reference_runs(s),
    )
    atomic_write_text(paths["results"], json.dumps(
        {"teachers": {r: {k: v for k, v in t.items() if k != "path"} for r, t in teacher_info.items()},
         "students": agg, "deployable": deploy, "seconds": seconds}, indent=2))
    write_report_index(s.out_dir)
    return report

"""The demo's building blocks: metrics reading, aggregation, report tables, job runner, commands."""
import json
import sys
from pathlib import Path

import pytest
from demo_pipeline import jobs, metrics, pipeline, report

from dicod_d2.errors import ConfigError


def _write_metrics(folder: Path, ap: float, times=(0.5, 0.7, 0.6)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"iteration": i, "time": t, "total_loss": 1.0} for i, t in enumerate(times)]
    evaluation = {"iteration": len(times) - 1, "bbox/AP": ap, "bbox/AP50": ap + 20}
    evaluation.update({f"bbox/{k}": ap for k in metrics.IOU_KEYS})
    rows.append(evaluation)
    (folder / "metrics.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_read_run_takes_last_evaluation_and_median_time(tmp_path):
    run = metrics.read_run(_write_metrics(tmp_path / "a", 12.5))
    assert run["bbox"]["AP"] == 12.5 and run["bbox"]["AP50"] == 32.5
    assert run["s_per_iter"] == pytest.approx(0.6)
    assert run["iterations"] == 3


def test_read_run_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not train"):
        metrics.read_run(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"iteration": 0, "time": 1.0}) + "\n")
    with pytest.raises(ValueError, match="no COCO evaluation"):
        metrics.read_run(tmp_path)


def test_aggregate_and_table_show_mean_std_and_difference(tmp_path):
    runs = {
        "baseline": {i: metrics.read_run(_write_metrics(tmp_path / f"b{i}", ap)) for i, ap in enumerate((20, 22))},
        "dicod": {i: metrics.read_run(_write_metrics(tmp_path / f"d{i}", ap)) for i, ap in enumerate((25, 27))},
    }
    agg = metrics.aggregate(runs)
    assert agg["dicod"]["bbox"]["AP"] == (pytest.approx(26.0), pytest.approx(2 ** 0.5))
    table = report.ap_table(agg, ["baseline", "dicod"], {"dicod": "full DICOD"})
    row = next(line for line in table.splitlines() if line.startswith("| full DICOD"))
    assert "| full DICOD | 0, 1 | 26.0 ± 1.4 (+5.0) |" in row
    assert "21.0 ± 1.4 |" in table  # the baseline has no difference column
    iou = report.iou_table(agg, ["baseline", "dicod"], {})
    assert iou.splitlines()[0].count("AP@") == 10


def test_run_jobs_runs_skips_and_reports_failures(tmp_path, capsys):
    script = "import json,sys,pathlib; d=pathlib.Path(sys.argv[1]); d.mkdir(exist_ok=True); " \
             "(d/'metrics.json').write_text(json.dumps({'iteration': 4})+'\\n')"
    succeeded = []
    ok = jobs.Job("ok", [sys.executable, "-c", script, str(tmp_path / "ok")], tmp_path / "ok", 5,
                  on_success=lambda: succeeded.append("ok"))
    skipped = jobs.Job("old", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "old", 5,
                       done=lambda: True, on_success=lambda: succeeded.append("old"))
    jobs.run_jobs([ok, skipped], parallel=2, stage="t", poll_s=0.1)
    assert succeeded == ["ok"]
    out = capsys.readouterr().out
    assert "old: finished earlier with the same settings, reused" in out
    assert "5/5 iterations (100%)" in out
    assert jobs.last_iteration(tmp_path / "ok") == 4
    bad = jobs.Job("bad", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path / "bad", 5,
                   on_success=lambda: succeeded.append("bad"))
    with pytest.raises(RuntimeError, match=r"bad failed \(exit 3\)[\s\S]*boom"):
        jobs.run_jobs([bad], parallel=1, stage="t", poll_s=0.1)
    assert succeeded == ["ok"]  # a failed command never records success


def test_commands_and_overrides_differ_only_in_the_teacher(tmp_path):
    s = pipeline.DemoSettings(out_dir=tmp_path, preset="quick", seeds=(0, 1), student_iters=7)
    teacher = tmp_path / "teacher" / "teacher.pth"
    base = pipeline.student_overrides(s, "faster_rcnn", "baseline", 1, teacher)
    dicod = pipeline.student_overrides(s, "faster_rcnn", "dicod", 1, teacher)
    assert {o.split("=")[0] for o in set(dicod) - set(base)} == {
        "model.distiller.teacher.path", "train.output_dir"}
    assert f"model.distiller.teacher.path={teacher}" in dicod
    assert {o.split("=")[0] for o in set(base) - set(dicod)} == {"train.output_dir"}
    assert "train.max_iter=7" in base and "dataloader.train.dataset.names=fashiondet_quick_train" in base
    # training evaluates on val (where settings are chosen); the report split is test
    assert "dataloader.test.dataset.names=fashiondet_quick_val" in base
    assert pipeline.dataset_overrides(s, "test")[1] == "dataloader.test.dataset.names=fashiondet_quick_test"
    lines = pipeline.commands(s, {"general": teacher})
    assert lines[0] == "python tools/make_fashiondet.py --preset quick"
    assert any("faster_rcnn/dicod.py" in line and "train.seed=$SEED" in line for line in lines)
    assert s.variants == ["baseline", "dicod"] and s.recipes == ["general"]
    assert pipeline.DemoSettings(out_dir=tmp_path, preset="demo", ablation=True).variants[-1] == "dicod"


def test_every_family_has_a_config_per_variant_and_its_teacher_recipe(tmp_path):
    s = pipeline.DemoSettings(out_dir=tmp_path, preset="quick", students=("ssd", "faster_rcnn", "retinanet"),
                              ablation=True)
    assert s.recipes == ["general", "ssd"]
    for student in s.students:
        for variant in s.variants:
            assert (pipeline.REPO / pipeline.student_config(student, variant)).is_file(), (student, variant)
    teachers = {"general": tmp_path / "g.pth", "ssd": tmp_path / "s.pth"}
    ssd = pipeline.student_overrides(s, "ssd", "dicod", 0, teachers["ssd"])
    assert f"model.distiller.teacher.path={teachers['ssd']}" in ssd
    assert pipeline.student_dir(s, "ssd", "dicod", 0) == tmp_path / "students" / "ssd" / "dicod_seed0"
    assert pipeline.teacher_dir(s, "ssd") == tmp_path / "teacher_ssd"
    with pytest.raises(ConfigError, match="unknown students \\['yolo'\\]; choose among"):
        pipeline.DemoSettings(out_dir=tmp_path, preset="quick", students=("yolo",))


def test_student_digest_depends_on_the_teacher_only_when_used():
    config = "configs/fashiondet/faster_rcnn/baseline.py"
    base = ["train.seed=0"]
    assert pipeline.student_digest(config, base, "a") == pipeline.student_digest(config, base, "b")
    with_teacher = base + ["model.distiller.teacher.path=t.pth"]
    assert pipeline.student_digest(config, with_teacher, "a") != pipeline.student_digest(config, with_teacher, "b")


def test_same_recipe_needs_result_and_matching_digest(tmp_path):
    digest = pipeline._recipe_hash("config text", ["a=1"])
    assert digest != pipeline._recipe_hash("config text", ["a=2"])
    assert not pipeline._same_recipe(tmp_path, digest, "model_final.pth")
    (tmp_path / "model_final.pth").write_bytes(b"x")
    (tmp_path / "demo_recipe.sha256").write_text(digest)
    assert pipeline._same_recipe(tmp_path, digest, "model_final.pth")
    assert not pipeline._same_recipe(tmp_path, pipeline._recipe_hash("other"), "model_final.pth")


def test_a_variant_on_fewer_seeds_is_compared_with_the_baseline_of_the_same_seeds(tmp_path):
    runs = {
        "baseline": {i: metrics.read_run(_write_metrics(tmp_path / f"b{i}", ap)) for i, ap in enumerate((20, 22, 30))},
        "kd_cls": {1: metrics.read_run(_write_metrics(tmp_path / "k1", 23))},
        "dicod": {i: metrics.read_run(_write_metrics(tmp_path / f"d{i}", ap)) for i, ap in enumerate((25, 27, 29))},
    }
    agg = metrics.aggregate(runs)
    assert agg["kd_cls"]["seeds"] == [1] and agg["kd_cls"]["baseline_bbox"]["AP"][0] == pytest.approx(22.0)
    assert "baseline_bbox" not in agg["dicod"]  # same seeds as the baseline: its mean is the reference
    table = report.ap_table(agg, ["baseline", "kd_cls", "dicod"], {"kd_cls": "+KD_cls", "dicod": "full DICOD"})
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()[2:]}
    assert "| +KD_cls | 1 | 23.0 (+1.0) |" in rows["+KD_cls"]  # against seed 1's 22, not the mean 24
    assert "| full DICOD | 0, 1, 2 | 27.0 ± 2.0 (+3.0) |" in rows["full DICOD"]


def test_ablation_seeds_restrict_the_single_term_students_only(tmp_path):
    s = pipeline.DemoSettings(out_dir=tmp_path, preset="quick", seeds=(0, 1, 2), students=("ssd",),
                              ablation=True, ablation_seeds=(0,))
    runs = s.runs()
    assert {(v, seed) for _, v, seed in runs if v in pipeline.SINGLE_TERM} == {("kd_cls", 0), ("loc_kd_loc", 0)}
    for variant in ("baseline", "control", "dicod"):
        assert sorted(seed for _, v, seed in runs if v == variant) == [0, 1, 2]
    every = pipeline.DemoSettings(out_dir=tmp_path, preset="quick", seeds=(0, 1), ablation=True).runs()
    assert len(every) == 2 * len(pipeline.VARIANTS)
    with pytest.raises(ConfigError, match=r"--ablation-seeds \[3\] not among --seeds \[0, 1\]"):
        pipeline.DemoSettings(out_dir=tmp_path, preset="quick", seeds=(0, 1), ablation=True, ablation_seeds=(1, 3))
    with pytest.raises(ConfigError, match="--ablation-seeds needs --ablation"):
        pipeline.DemoSettings(out_dir=tmp_path, preset="quick", ablation_seeds=(0,))


def test_reports_of_other_families_never_share_a_file(tmp_path):
    """A demo of RetinaNet after one of Faster R-CNN writes its own report, TIDE, examples, export
    and results; report.md links to both reports."""
    runs = {students: pipeline.DemoSettings(out_dir=tmp_path, preset="tiny", students=students)
            for students in [("faster_rcnn",), ("retinanet",), ("faster_rcnn", "retinanet")]}
    paths = {students: pipeline.report_paths(s) for students, s in runs.items()}
    files = [p for ps in paths.values() for key, p in ps.items() if key != "ap_vs_iou"]
    files += [p for ps in paths.values() for p in ps["ap_vs_iou"].values()]
    assert len(set(files)) == len(files) == 3 * 5 + 4
    assert all(p.parent == tmp_path and p.name != "report.md" for p in files)
    for students in [("faster_rcnn",), ("retinanet",)]:
        paths[students]["report"].write_text(f"# {students}")
    index = pipeline.write_report_index(tmp_path)
    assert index == tmp_path / "report.md"
    assert index.read_text().splitlines()[-2:] == ["- [faster_rcnn](report_faster_rcnn.md)",
                                                   "- [retinanet](report_retinanet.md)"]


def test_the_report_puts_the_demo_beside_the_reference_runs(tmp_path):
    reference = [{"variant": v, "seed": seed, "bbox": {"AP": ap}, "measured_with": "stack"}
                 for v, seed, ap in (("baseline", 0, 10.0), ("baseline", 1, 12.0), ("dicod", 0, 13.0),
                                     ("dicod", 1, 15.0), ("dicod", 2, 17.0), ("no_teacher", 0, 11.0))]
    agg = {"baseline": {"bbox": {"AP": (11.5, 0.0)}, "seeds": [0]}, "dicod": {"bbox": {"AP": (14.0, 0.0)}, "seeds": [0]}}
    table = report.reference_table(agg, reference, ["baseline", "dicod"], {"dicod": "full DICOD"})
    assert "| baseline | 11.5 (0) | 11.0 ± 1.4 (0, 1) | 10.0 – 12.0 | +0.5 |" in table
    assert "| full DICOD | 14.0 (0) | 15.0 ± 2.0 (0, 1, 2) | 13.0 – 17.0 | -1.0 |" in table
    assert "no_teacher" not in table  # a variant the demo did not train has no row


def test_the_reference_runs_are_those_of_the_demos_configs_and_teacher(tmp_path):
    demo = pipeline.reference_runs(pipeline.DemoSettings(out_dir=tmp_path, preset="demo", students=("faster_rcnn",)))
    assert {r["variant"] for r in demo["faster_rcnn"]} >= {"baseline", "dicod"}
    assert {(r["teacher"], r["split"], r["family"]) for r in demo["faster_rcnn"]} == {
        (pipeline.REFERENCE_TEACHER["general"], pipeline.REPORT_SPLIT, "faster_rcnn")}
    assert pipeline.reference_runs(pipeline.DemoSettings(out_dir=tmp_path, preset="quick")) == {}
    shorter = pipeline.DemoSettings(out_dir=tmp_path, preset="demo", student_iters=10)
    assert pipeline.reference_runs(shorter) == {}

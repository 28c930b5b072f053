"""tools/results_doc.py: RESULTS.md's tables equal what the committed summary renders; new teachers,
variants and families render without code changes; runs are collected from real run folders."""
import json

import pytest
import results_doc
from _helpers import REPO, run_tool


def test_the_results_document_equals_its_rendered_summary():
    text = results_doc.DOCUMENT.read_text()
    blocks = results_doc.summary_blocks()
    assert blocks, "the committed summary holds no record"
    assert results_doc.render_document(text, blocks) == text
    for key in blocks:  # every table has its block in the document, none is appended
        assert f"<!-- BEGIN GENERATED: {key} -->" in text


def test_check_mode_fails_on_an_edited_table(tmp_path):
    summary = tmp_path / "results"
    summary.mkdir()
    (summary / "a.json").write_text((results_doc.SUMMARY_DIR / "fashiondet_ssd_resnet_tiny_56.json").read_text())
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# results\n")
    assert run_tool("results_doc.py", "render", "--summary", str(summary), "--document", str(doc)).returncode == 0
    ok = run_tool("results_doc.py", "render", "--check", "--summary", str(summary), "--document", str(doc))
    assert ok.returncode == 0, ok.stderr
    doc.write_text(doc.read_text().replace("| **full DICOD** | 0, 1, 2, 3 | ", "| **full DICOD** | 0, 1, 2, 3 | 9"))
    bad = run_tool("results_doc.py", "render", "--check", "--summary", str(summary), "--document", str(doc))
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("error: ")


def _record(variant, seed, ap, family="faster_rcnn_lite0", teacher="resnet50_imagenet"):
    return {"family": family, "variant": variant, "seed": seed, "teacher": teacher, "dataset": "fashiondet",
            "split": "test", "schedule": "600 it., batch 8", "bbox": {"AP": ap, "AP50": 2 * ap, "AP75": ap / 2},
            "measured_with": "stack", "command": f"train --seed {seed}"}


def test_new_family_variants_and_teacher_render_without_code_changes():
    records = [_record("baseline", 0, 10.0), _record("baseline", 1, 12.0), _record("baseline", 2, 30.0),
               _record("wrong_teacher", 0, 13.0), _record("wrong_teacher", 1, 15.0),
               _record("no_teacher", 0, 11.0), _record("new_idea", 0, 9.0)]
    text = results_doc.render_document("# doc\n\nnote\n", results_doc.render_blocks(records))
    assert text.startswith("# doc\n\nnote\n")
    assert "Faster R-CNN, ImageNet-initialised EfficientNet-Lite0 (600 it., batch 8), teacher resnet50_imagenet" in text
    # mean ± std over seeds 0 and 1; the difference to the baseline over the same seeds (11.0), not all three
    assert "| **full DICOD, teacher classes deranged** | 0, 1 | 14.0 ± 1.4 (+3.0) | 28.0 ± 2.8 (+6.0) |" in text
    assert "| **no-teacher control (label smoothing + L_loc_pix)** | 0 | 11.0 (+1.0) |" in text
    assert "| **new_idea** | 0 | 9.0 (-1.0) |" in text  # an unknown variant: its own name, last
    assert text.index("no-teacher control (label smoothing + L_loc_pix") < text.index("new_idea")
    assert "| **baseline** | 0, 1, 2 | 17.3 ± 11.0 |" in text
    assert "| full DICOD, teacher classes deranged | 1 | 15.0 (+3.0) |" in text
    # a variant of one seed has its mean row only, not the same row again among the seeds' rows
    assert "| no-teacher control (label smoothing + L_loc_pix) | 0 |" not in text
    assert "| new_idea | 0 |" not in text and "| baseline | 0 | 10.0 |" in text
    # rendering again over its own output changes nothing
    assert results_doc.render_document(text, results_doc.render_blocks(records)) == text


def test_two_records_of_one_run_are_an_error():
    with pytest.raises(results_doc.ResultsDocError, match="two records"):
        results_doc.render_blocks([_record("baseline", 0, 1.0), _record("baseline", 0, 2.0)])


def test_collect_reads_val_from_metrics_and_test_from_the_demo_cache(tmp_path):
    root = tmp_path / "faster_rcnn"
    for name, val_ap, test_ap in (("baseline_seed0", 9.0, 8.5), ("dicod_seed0", 12.0, 11.5)):
        run = root / name
        (run / "test").mkdir(parents=True)
        (run / "metrics.json").write_text(
            json.dumps({"iteration": 9, "total_loss": 1.0}) + "\n"
            + json.dumps({"iteration": 9, "bbox/AP": val_ap, "bbox/AP50": 20.0, "bbox/AP75": 7.0}) + "\n")
        (run / "test" / "coco_eval.json").write_text(json.dumps(
            {"checkpoint_sha256": "0", "bbox": {"AP": test_ap, "AP50": 21.0, "AP75": 8.0, "APs": 1.0}}))
    out = tmp_path / "summary" / "new.json"
    for split in ("val", "test"):
        done = run_tool("results_doc.py", "collect", str(root), "--family", "faster_rcnn", "--teacher", "t",
                        "--schedule", "s", "--split", split, "--measured-with", "m", "--out", str(out))
        assert done.returncode == 0, done.stderr
    records = json.loads(out.read_text())
    got = {(r["variant"], r["split"]): r["bbox"] for r in records}
    assert got == {("baseline", "val"): {"AP": 9.0, "AP50": 20.0, "AP75": 7.0},
                   ("dicod", "val"): {"AP": 12.0, "AP50": 20.0, "AP75": 7.0},
                   ("baseline", "test"): {"AP": 8.5, "AP50": 21.0, "AP75": 8.0},
                   ("dicod", "test"): {"AP": 11.5, "AP50": 21.0, "AP75": 8.0}}
    assert all(str(root) in r["command"] for r in records)
    templated = run_tool("results_doc.py", "collect", str(root), "--family", "f", "--teacher", "t", "--schedule",
                         "s", "--split", "val", "--measured-with", "m", "--out", str(out),
                         "--command", "train {variant}.py seed={seed}")
    assert templated.returncode == 0, templated.stderr
    assert {r["command"] for r in json.loads(out.read_text()) if r["family"] == "f"} == {
        "train baseline.py seed=0", "train dicod.py seed=0"}
    missing = run_tool("results_doc.py", "collect", str(root), "--family", "f", "--teacher", "t", "--schedule",
                       "s", "--split", "train", "--measured-with", "m", "--out", str(out))
    assert missing.returncode == 1 and "coco_eval.json does not exist" in missing.stderr


def test_the_summary_names_the_teacher_and_stack_of_every_run():
    for record in results_doc.load_records():
        assert record["teacher"] and record["measured_with"] and record["command"]
        assert (REPO / record["command"].split("--config-file ")[1].split()[0]).is_file()


def _teacher(name, top1, dataset="fashiondet"):
    return {"name": name, "dataset": dataset, "split": "val", "config": f"configs/teacher/{name}.py",
            "parameters": 3_380_000, "input_size": 56,
            "classification": {"top1": top1, "top5": 99.0, "top1-small": 70.0, "top1-medium": float("nan")},
            "measured_with": "stack", "command": f"eval {name}"}


def test_teachers_and_the_teachers_share_render_from_the_summary():
    strong, weak = _teacher("strong", 82.0), _teacher("weak", 10.0)
    records = [_record("baseline", 0, 10.0, teacher="strong"), _record("baseline", 1, 12.0, teacher="strong"),
               _record("dicod", 0, 13.0, teacher="strong"), _record("dicod", 1, 16.0, teacher="strong"),
               _record("baseline", 0, 10.0, teacher="weak"), _record("dicod", 0, 9.5, teacher="weak"),
               _record("dicod", 0, 20.0, teacher="unknown")]  # a teacher without an evaluation: no row
    blocks = results_doc.render_blocks(records, [strong, weak])
    teachers = blocks["teachers/fashiondet/val"]
    assert "| strong | `configs/teacher/strong.py` | 3.38 M | 56 | 82.0 | 99.0 | 70.0 / – / – |" in teachers
    assert teachers.index("| weak |") < teachers.index("| strong |")  # by top-1
    share = blocks["share/fashiondet/faster_rcnn_lite0/600 it., batch 8/test"]
    assert "| weak | 10.0 | 0 | 9.5 (-0.5) | 19.0 (-1.0) |" in share
    assert "| strong | 82.0 | 0, 1 | 14.5 ± 2.1 (+3.5) | 29.0 ± 4.2 (+7.0) |" in share
    assert "unknown" not in share
    alone = results_doc.render_blocks(records, [strong])  # one teacher: nothing to compare
    assert not [k for k in alone if k.startswith("share/")] and "teachers/fashiondet/val" in alone


def test_collect_teacher_reads_the_eval_only_summary_and_plot_draws_the_share(tmp_path):
    run = tmp_path / "eval"
    run.mkdir()
    missing = run_tool("results_doc.py", "collect-teacher", str(run), "--name", "t", "--measured-with", "m",
                       "--out", str(tmp_path / "summary/teachers/f.json"))
    assert missing.returncode == 1 and "classification_eval.json does not exist" in missing.stderr
    (run / "classification_eval.json").write_text(json.dumps(
        {"config": "configs/teacher/t.py", "checkpoint": "t.pth", "datasets": ["fashiondet_val"],
         "parameters": 10, "input_size": 112, "classification": {"top1": 80.0, "top5": 99.0}}))
    for name in ("t", "t", "u"):  # collecting again replaces the record
        done = run_tool("results_doc.py", "collect-teacher", str(run), "--name", name, "--measured-with", "m",
                        "--out", str(tmp_path / "summary/teachers/f.json"))
        assert done.returncode == 0, done.stderr
    teachers = json.loads((tmp_path / "summary/teachers/f.json").read_text())
    assert [t["name"] for t in teachers] == ["t", "u"]
    assert teachers[0]["classification"]["top1"] == 80.0 and "--eval-only" in teachers[0]["command"]
    (tmp_path / "summary/runs.json").write_text(json.dumps(
        [_record("baseline", 0, 10.0, teacher="t"), _record("dicod", 0, 12.0, teacher="t"),
         _record("dicod", 0, 11.0, teacher="u")]))
    figure = tmp_path / "share.png"
    args = ["--family", "faster_rcnn_lite0", "--schedule", "600 it., batch 8", "--summary", str(tmp_path / "summary")]
    done = run_tool("results_doc.py", "plot", *args, "--out", str(figure))
    assert done.returncode == 0, done.stderr
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = run_tool("results_doc.py", "plot", *args[:1], "ssd", *args[2:], "--out", str(figure))
    assert other.returncode == 1 and "taught a full DICOD run of ssd" in other.stderr


def test_collect_attaches_a_real_tide_analysis_and_renders_the_localization_table(tmp_path):
    # one object; the baseline's box overlaps it at IoU 0.6 (a localization error at fg IoU 0.7 only),
    # loc_kd_loc's box is exact: TIDE's Loc dAP is 0 / 100 for the baseline and 0 / 0 for loc_kd_loc
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({
        "images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.png"}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
                         "iscrowd": 0}]}))
    root = tmp_path / "runs"
    dets = []
    for name, box, ap75 in (("baseline_seed0", [20, 10, 40, 40], 0.0), ("loc_kd_loc_seed0", [10, 10, 40, 40], 100.0)):
        run = root / name
        (run / "test").mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"iteration": 9, "bbox/AP": 1.0}) + "\n")
        (run / "test" / "coco_eval.json").write_text(json.dumps({"bbox": {"AP": 50.0, "AP50": 100.0, "AP75": ap75}}))
        results = run / "test" / "coco_instances_results.json"
        results.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": box, "score": 0.9}]))
        dets.append(f"{name}={results}")
    tide = run_tool("tide_analysis.py", "--gt", str(gt), "--dets", *dets, "--thresholds", "0.5", "0.7",
                    "--no-pdf", "--out", str(tmp_path / "tide"))
    assert tide.returncode == 0, tide.stderr
    summary = tmp_path / "summary"
    summary.mkdir()
    args = ("results_doc.py", "collect", str(root), "--family", "faster_rcnn", "--teacher", "t", "--schedule", "s",
            "--split", "test", "--measured-with", "m", "--out", str(summary / "runs.json"))
    done = run_tool(*args, "--tide", str(tmp_path / "tide" / "tide_summary.json"))
    assert done.returncode == 0, done.stderr
    records = {r["variant"]: r for r in json.loads((summary / "runs.json").read_text())}
    assert records["baseline"]["tide"]["fg_threshold"] == [0.5, 0.7]
    assert records["baseline"]["tide"]["dAP"]["Loc"] == pytest.approx([0.0, 100.0])
    assert records["loc_kd_loc"]["tide"]["dAP"]["Loc"] == pytest.approx([0.0, 0.0])
    blocks = results_doc.summary_blocks(summary)
    table = blocks["localization/fashiondet/faster_rcnn/s/t/test"]
    assert "| baseline | 0 | 0.0 | 0.0 | 100.0 |" in table
    assert "| +loc_pix+KD_loc | 0 | 100.0 (+100.0) | 0.0 (+0.0) | 0.0 (-100.0) |" in table
    # TIDE's six error types at IoU 0.5: both boxes are true positives there
    assert "| run | seeds | Cls | Loc | Both | Dupe | Bkg | Miss |" in table
    assert "| baseline | 0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 |" in table
    # a TIDE summary naming a run that is not collected is refused with a clear error
    tide_json = json.loads((tmp_path / "tide" / "tide_summary.json").read_text())
    tide_json["runs"]["dicod_seed3"] = tide_json["runs"]["baseline_seed0"]
    (tmp_path / "other.json").write_text(json.dumps(tide_json))
    bad = run_tool(*args, "--tide", str(tmp_path / "other.json"))
    assert bad.returncode == 1 and "dicod_seed3" in bad.stderr

"""TIDE error analysis on a hand-made case whose errors are known one by one."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tide_report import write_analysis  # the tools write the library's analysis
from tidecv import TIDE, TIDERun

from dicod_d2.evaluation.tide_analysis import (
    DEFAULT_THRESHOLDS,
    ERROR_TYPES,
    TideInputError,
    analyze,
    cache_path,
    load_detections,
    load_ground_truth,
)

CAT, DOG = 1, 2
# Ground truth (boxes [x, y, w, h]); image 4 has no object.
GT = {
    "A": (1, CAT, [10, 10, 30, 30]),
    "B": (1, DOG, [50, 50, 40, 40]),
    "C": (2, CAT, [0, 0, 50, 50]),
    "D": (2, DOG, [60, 10, 30, 30]),
    "E": (3, CAT, [20, 20, 40, 40]),
    "F": (3, DOG, [70, 70, 20, 20]),
}
# Detections with one error of each kind but "Both"; every score is distinct. FPs outrank the TP
# E (0.6) of their class, so fixing any of them changes AP.
FLAWED = [
    (1, CAT, [10, 10, 30, 30], 0.90),  # A: true positive
    (1, CAT, [50, 50, 40, 40], 0.80),  # B with the wrong class, IoU 1: Cls
    (2, CAT, [15, 15, 50, 50], 0.75),  # C shifted, IoU 35²/(2·50²-35²) = 0.32: Loc
    (1, CAT, [10, 10, 30, 30], 0.70),  # A again, lower score: Dupe
    (2, DOG, [60, 10, 30, 30], 0.85),  # D: true positive
    (3, CAT, [20, 20, 40, 40], 0.60),  # E: true positive
    (3, DOG, [0, 70, 20, 20], 0.88),  # IoU 0 with every GT: Bkg
]  # F has no detection: Miss
EXPECTED_COUNTS = {"Cls": 1, "Loc": 1, "Both": 0, "Dupe": 1, "Bkg": 1, "Miss": 1}
# Hand-computed AP50 (101-point COCO interpolation): cat precisions 1 up to recall 1/3, then 0.4
# up to 2/3 -> (34 + 33 * 0.4) / 101; dog precision 0.5 up to recall 1/3 -> 34 * 0.5 / 101.
EXPECTED_AP50 = 100 * ((34 + 33 * 0.4) / 101 + 34 * 0.5 / 101) / 2


def _gt_json(segmentation: bool = True, crowd: bool = False) -> dict:
    anns = []
    for i, (img, cat, (x, y, w, h)) in enumerate(GT.values(), start=1):
        ann = {
            "id": i,
            "image_id": img,
            "category_id": cat,
            "bbox": [x, y, w, h],
            "area": w * h,
            "iscrowd": 0,
        }
        if segmentation:
            ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        anns.append(ann)
    if crowd:
        anns.append(
            {
                "id": 99,
                "image_id": 4,
                "category_id": CAT,
                "bbox": [0, 0, 60, 60],
                "area": 3600,
                "iscrowd": 1,
            }
        )
    return {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in range(1, 5)
        ],
        "annotations": anns,
        "categories": [{"id": CAT, "name": "cat"}, {"id": DOG, "name": "dog"}],
    }


def _results(dets) -> list[dict]:
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in dets]


def _shifted() -> list[tuple]:
    """Every GT detected exactly, except A shifted by 4 px: IoU 780 / 1020 = 0.765."""
    dets = [(img, cat, list(box), 0.9 - 0.05 * k) for k, (img, cat, box) in enumerate(GT.values())]
    dets[0][2][0] += 4
    return dets


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def case(tmp_path):
    return {
        "gt": _write(tmp_path / "gt.json", _gt_json()),
        "flawed": _write(tmp_path / "flawed.json", _results(FLAWED)),
        "shifted": _write(tmp_path / "shifted.json", _results(_shifted())),
    }


@pytest.fixture
def summary(case, tmp_path):
    dets = {"flawed": case["flawed"], "shifted": case["shifted"]}
    return write_analysis(case["gt"], dets, tmp_path / "out")


def test_each_error_is_assigned_to_its_detection(case):
    gt = load_ground_truth(case["gt"])
    run = TIDERun(gt, load_detections(case["flawed"], "flawed", gt), 0.5, 0.1, TIDE.BOX, 100)
    found = sorted(
        (type(e).short_name, e.pred["score"] if hasattr(e, "pred") else tuple(e.gt["bbox"]))
        for e in run.errors
    )
    assert found == sorted(
        [("Cls", 0.80), ("Loc", 0.75), ("Dupe", 0.70), ("Bkg", 0.88), ("Miss", (70, 70, 20, 20))]
    )


def test_main_errors_counts_and_ap(summary, case):
    flawed = summary["runs"]["flawed"]
    assert flawed["main_error_counts"] == EXPECTED_COUNTS
    for err, n in EXPECTED_COUNTS.items():
        assert (flawed["main_errors"][err] > 0) == (n > 0), err
    assert flawed["AP50"] == pytest.approx(EXPECTED_AP50, abs=1e-6)

    # AP agrees with pycocotools at fg 0.5 and 0.75 (independent implementation).
    coco_gt = COCO(str(case["gt"]))
    ev = COCOeval(coco_gt, coco_gt.loadRes(str(case["flawed"])), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    curves = flawed["curves"]
    assert curves["AP"][0] == pytest.approx(100 * ev.stats[1], abs=1e-6)
    assert curves["AP"][5] == pytest.approx(100 * ev.stats[2], abs=1e-6)

    shifted = summary["runs"]["shifted"]
    assert shifted["AP50"] == pytest.approx(100.0)
    assert set(shifted["main_errors"].values()) == {0.0}
    assert set(shifted["main_error_counts"].values()) == {0}


def test_curves_over_fg_threshold(summary):
    assert len(DEFAULT_THRESHOLDS) == 10
    for run in summary["runs"].values():
        curves = run["curves"]
        assert curves["fg_threshold"] == pytest.approx(np.arange(0.5, 0.96, 0.05))
        assert len(curves["AP"]) == 10
        for err in ERROR_TYPES:
            assert len(curves["dAP"][err]) == len(curves["counts"][err]) == 10
    # Errors of the flawed run have IoU 1 or <= 0.32: the same at every threshold.
    flawed = summary["runs"]["flawed"]["curves"]
    assert {e: set(flawed["counts"][e]) for e in ERROR_TYPES} == {
        e: {n} for e, n in EXPECTED_COUNTS.items()
    }
    # The shifted box (IoU 0.765) is a true positive up to 0.75, a Loc error from 0.80.
    shifted = summary["runs"]["shifted"]["curves"]
    assert shifted["counts"]["Loc"] == [0] * 6 + [1] * 4
    assert [d > 0 for d in shifted["dAP"]["Loc"]] == [False] * 6 + [True] * 4
    assert shifted["AP"][5] == pytest.approx(100.0) and shifted["AP"][6] < 100.0
    assert all(v == 0 for e in ("Cls", "Both", "Dupe", "Bkg", "Miss") for v in shifted["counts"][e])


def test_the_library_analysis_writes_nothing(case, tmp_path):
    before = sorted(tmp_path.rglob("*"))
    summary = analyze(case["gt"], {"flawed": case["flawed"]}, thresholds=(0.5,))
    assert "files" not in summary and summary["runs"]["flawed"]["AP50"] == pytest.approx(EXPECTED_AP50)
    assert sorted(tmp_path.rglob("*")) == before


def test_outputs(summary, tmp_path):
    out = tmp_path / "out"
    png = out / "tide_errors.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < png.stat().st_size < 2_000_000
    with Image.open(png) as im:
        assert 800 <= im.width <= 2000 and 500 <= im.height <= 1500
        assert np.asarray(im.convert("L")).std() > 10  # not a blank canvas
    assert (out / "tide_errors.pdf").read_bytes()[:5] == b"%PDF-"
    assert json.loads((out / "tide_summary.json").read_text()) == json.loads(json.dumps(summary))
    assert not list(out.glob(".*.tmp"))

    with open(out / "tide_summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 10
    for row in rows:
        curves = summary["runs"][row["run"]]["curves"]
        i = curves["fg_threshold"].index(float(row["fg_iou_threshold"]))
        assert float(row["bg_iou_threshold"]) == 0.1
        assert float(row["AP"]) == pytest.approx(curves["AP"][i], abs=1e-4)
        for err in ERROR_TYPES:
            assert float(row[f"dAP_{err}"]) == pytest.approx(curves["dAP"][err][i], abs=1e-4)
            assert int(row[f"count_{err}"]) == curves["counts"][err][i]


def test_segmentation_field_does_not_matter(case, tmp_path):
    no_seg = _write(tmp_path / "gt_noseg.json", _gt_json(segmentation=False))
    kw = dict(thresholds=(0.5, 0.8), save_pdf=False)
    a = write_analysis(case["gt"], {"flawed": case["flawed"]}, tmp_path / "a", **kw)
    b = write_analysis(no_seg, {"flawed": case["flawed"]}, tmp_path / "b", **kw)
    assert a["runs"] == b["runs"]


def test_crowd_region_is_ignored(tmp_path):
    gt = _write(tmp_path / "gt.json", _gt_json(crowd=True))
    in_crowd = (4, CAT, [5, 5, 20, 20], 0.99)  # top score, inside the cat crowd box
    res = {
        "base": _write(tmp_path / "a.json", _results(FLAWED)),
        "crowd": _write(tmp_path / "b.json", _results(FLAWED + [in_crowd])),
    }
    runs = write_analysis(gt, res, tmp_path / "out", thresholds=(0.5,), save_pdf=False)["runs"]
    assert runs["crowd"]["main_error_counts"] == EXPECTED_COUNTS
    assert runs["crowd"]["AP50"] == pytest.approx(EXPECTED_AP50, abs=1e-6)
    assert runs["crowd"]["main_errors"] == runs["base"]["main_errors"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"category_id": 7}, r"category ids not in the ground truth's categories: \[7\]"),
        ({"image_id": 42}, r"image ids not in the ground truth: \[42\]"),
    ],
)
def test_unknown_ids_fail_clearly(case, tmp_path, bad, message):
    dets = _results(FLAWED)
    dets[3] = {**dets[3], **bad}
    path = _write(tmp_path / "bad_results.json", dets)
    with pytest.raises(TideInputError, match=message) as info:
        write_analysis(case["gt"], {"ok": case["flawed"], "bad": path}, tmp_path / "out")
    assert "bad_results.json" in str(info.value) and "same dataset json" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_inputs_fail_clearly(case, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        write_analysis(case["gt"], {"x": tmp_path / "missing.json"}, tmp_path / "out")
    no_bbox = copy.deepcopy(_results(FLAWED))
    del no_bbox[0]["bbox"]
    with pytest.raises(TideInputError, match="detection 0 .* needs the keys"):
        write_analysis(case["gt"], {"x": _write(tmp_path / "r.json", no_bbox)}, tmp_path / "out")
    with pytest.raises(TideInputError, match="run 'none' has no detection"):
        write_analysis(case["gt"], {"none": _write(tmp_path / "e.json", [])}, tmp_path / "out")
    with pytest.raises(TideInputError, match="foreground IoU thresholds"):
        write_analysis(case["gt"], {"x": case["flawed"]}, tmp_path / "out", thresholds=(0.05,))


@pytest.mark.parametrize("item", ["results.json", "=results.json", "name=", "a=x.json a=y.json"])
def test_parse_named_paths_rejects_malformed(item):
    with pytest.raises(TideInputError, match="NAME"):
        _cli().parse_named_paths(item.split())


def test_parse_named_paths():
    assert _cli().parse_named_paths(["base=out/r.json", "k=a=b.json"]) == {
        "base": Path("out/r.json"),
        "k": Path("a=b.json"),
    }


def _cli():
    path = Path(__file__).parents[2] / "tools" / "tide_analysis.py"
    spec = importlib.util.spec_from_file_location("tide_analysis_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli(case, tmp_path, capsys):
    cli = _cli()
    out = tmp_path / "cli"
    summary = cli.main(
        [
            "--gt",
            str(case["gt"]),
            "--dets",
            f"flawed={case['flawed']}",
            "--out",
            str(out),
            "--thresholds",
            "0.5",
            "0.75",
            "--no-pdf",
        ]
    )
    printed = capsys.readouterr().out
    assert "flawed" in printed and f"{EXPECTED_AP50:6.2f}" in printed
    assert summary["runs"]["flawed"]["curves"]["fg_threshold"] == [0.5, 0.75]
    assert {p.name for p in out.iterdir()} == {
        "tide_errors.png",
        "tide_summary.csv",
        "tide_summary.json",
    }
    with pytest.raises(SystemExit) as info:
        cli.main(["--gt", str(case["gt"]), "--dets", "oops", "--out", str(out)])
    assert info.value.code == 2
    assert "expected NAME=PATH" in capsys.readouterr().err


@pytest.mark.parametrize("score", [float("nan"), float("inf"), "0.9", None])
def test_non_finite_or_non_number_scores_are_rejected(case, tmp_path, score):
    dets = _results(FLAWED)
    dets[2]["score"] = score
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(dets))  # json writes NaN / Infinity, which Python reads back
    with pytest.raises(TideInputError, match=r"nan.json': detection 2 has score .*finite numbers"):
        write_analysis(case["gt"], {"x": path}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_reported_before_the_analysis(case, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as info:
        _cli().main(["--gt", str(case["gt"]), "--dets", f"x={case['flawed']}", "--out", str(blocker / "out")])
    assert info.value.code == 2
    assert f"cannot create output folder '{blocker / 'out'}'" in capsys.readouterr().err


def test_cache_reuses_a_run_only_while_its_inputs_are_unchanged(case, tmp_path, monkeypatch):
    from dicod_d2.evaluation import tide_analysis

    dets = {"flawed": case["flawed"], "shifted": case["shifted"]}
    fresh = write_analysis(case["gt"], dets, tmp_path / "fresh", save_pdf=False)
    first = write_analysis(case["gt"], dets, tmp_path / "a", save_pdf=False, cache=True)
    assert cache_path(case["flawed"]) == tmp_path / "flawed.tide.json" and cache_path(case["flawed"]).is_file()
    assert first["runs"] == fresh["runs"]

    calls = []
    real = tide_analysis.analyze_run
    monkeypatch.setattr(tide_analysis, "analyze_run", lambda *a: calls.append(a[1].name) or real(*a))
    again = write_analysis(case["gt"], dets, tmp_path / "b", save_pdf=False, cache=True)
    assert calls == [] and again["runs"] == fresh["runs"]  # nothing recomputed, the same summary

    _write(case["shifted"], _results(FLAWED))  # new detections under the same path
    changed = write_analysis(case["gt"], dets, tmp_path / "c", save_pdf=False, cache=True)
    assert calls == ["shifted"]
    assert changed["runs"]["shifted"]["main_errors"] == fresh["runs"]["flawed"]["main_errors"]
    write_analysis(case["gt"], dets, tmp_path / "d", thresholds=[0.5, 0.75], save_pdf=False, cache=True)
    assert calls == ["shifted", "flawed", "shifted"]  # other thresholds: both recomputed

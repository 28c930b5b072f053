"""tools/collect_results.py on fake metrics.json files (detectron2's JSONWriter format)."""
import importlib.util
import json
import sys

import pytest
from _helpers import REPO

spec = importlib.util.spec_from_file_location("collect_results", REPO / "tools/collect_results.py")
collect_results = importlib.util.module_from_spec(spec)
sys.modules["collect_results"] = collect_results  # dataclasses look their module up
spec.loader.exec_module(collect_results)


def _write_run(folder, evaluations, truncated_tail=False):
    """A metrics.json with training lines and one line per evaluation {metric: value} (in order)."""
    folder.mkdir(parents=True)
    lines = []
    for i, ev in enumerate(evaluations):
        lines.append(json.dumps({"iteration": 10 * i + 5, "total_loss": 1.0 / (i + 1)}))
        lines.append(json.dumps({"iteration": 10 * i + 9, **{f"bbox/{k}": v for k, v in ev.items()},
                                 "total_loss": 0.5}))
    lines.append(json.dumps({"iteration": 99, "total_loss": 0.1}))
    text = "\n".join(lines) + "\n"
    if truncated_tail:
        text += '{"iteration": 100, "total_lo'
    (folder / "metrics.json").write_text(text)


def _row(text, student, table=0):
    block = text.split("### ")[table + 1]
    return next(line for line in block.splitlines() if line.startswith(f"| {student} |"))


def test_coco_and_fashiondet_layouts_last_evaluation_and_deltas(tmp_path, capsys):
    coco = tmp_path / "coco"
    _write_run(coco / "ssd300" / "baseline", [{"AP": 20.0, "AP50": 40.0}, {"AP": 25.6, "AP50": 44.0}])
    _write_run(coco / "ssd300" / "kd_cls", [{"AP": 26.3, "AP50": 45.5}], truncated_tail=True)
    _write_run(coco / "ssd300" / "dicod", [{"AP": 27.96, "AP50": 46.0}])
    fd = tmp_path / "fashiondet"
    _write_run(fd / "retinanet_baseline", [{"AP": 50.0, "AP50": 70.0}])
    _write_run(fd / "retinanet_loc_kd_loc", [{"AP": 49.0, "AP50": 69.0}])
    _write_run(fd / "notes", [{"AP": 1.0}])  # names no variant: skipped
    out = tmp_path / "table.md"

    assert collect_results.main([str(coco), str(fd), "--metrics", "AP", "AP50", "--paper", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text
    assert _row(text, "ssd300") == "| ssd300 | 25.6 | 26.3 (+0.7) | – | – | 28.0 (+2.4) |"
    assert _row(text, "retinanet") == "| retinanet | 50.0 | – | – | 49.0 (-1.0) | – |"
    assert _row(text, "ssd300", table=1) == "| ssd300 | 44.0 | 45.5 (+1.5) | – | – | 46.0 (+2.0) |"
    assert "| ↳ paper | 25.6 | 26.3 (+0.7) | 27.1 (+1.5) | 27.2 (+1.6) | 27.9 (+2.3) |" in text
    assert "notes" not in text
    assert f"`{coco / 'ssd300' / 'baseline'}` (iteration 19)" in text


def test_parse_run_name(tmp_path):
    assert collect_results.parse_run_name(tmp_path / "faster_rcnn_loc_kd_loc") == ("faster_rcnn", "loc_kd_loc")
    assert collect_results.parse_run_name(tmp_path / "faster_rcnn_qr50_loc") == ("faster_rcnn_qr50", "loc")
    assert collect_results.parse_run_name(tmp_path / "qr50_1x" / "kd_cls") == ("qr50_1x", "kd_cls")
    assert collect_results.parse_run_name(tmp_path / "inference") is None


def test_errors(tmp_path, capsys):
    assert collect_results.main([str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert collect_results.main([str(tmp_path)]) == 1
    assert "no evaluated run" in capsys.readouterr().err
    _write_run(tmp_path / "a" / "x_dicod", [{"AP": 1.0}])
    _write_run(tmp_path / "b" / "x_dicod", [{"AP": 2.0}])
    assert collect_results.main([str(tmp_path)]) == 1
    assert "two runs for x / dicod" in capsys.readouterr().err
    bad = tmp_path / "c" / "y_baseline"
    bad.mkdir(parents=True)
    (bad / "metrics.json").write_text('{"iteration": 1, "bbox/AP": 3.0}\nnot json\n{"iteration": 2}\n')
    with pytest.raises(collect_results.ResultsError, match="metrics.json:2 is not JSON"):
        collect_results.last_evaluation(bad / "metrics.json")


def test_every_detector_config_writes_where_the_table_finds_it():
    """Each COCO / FashionDet student config's train.output_dir names its own student and variant,
    and every COCO student has the paper's numbers (Section 4 and Table S2) in PAPER."""
    from pathlib import Path

    from dicod_d2.config.lazy import load_config
    from dicod_d2.modeling.variants import CONTROLS

    configs = REPO / "configs"
    for rel in sorted(configs.glob("coco/*/*.py")) + sorted(configs.glob("fashiondet/*/*.py")):
        cfg = load_config(rel)
        named = collect_results.parse_run_name(Path(cfg.train.output_dir))
        if rel.stem in CONTROLS:  # the controls are not columns of the paper's table
            assert named is None, rel
        else:
            assert named == (rel.parent.name, rel.stem), rel
        if rel.parent.parent.name == "coco":
            assert rel.parent.name in collect_results.PAPER, rel

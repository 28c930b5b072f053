"""tools/export_model.py and tools/predict.py end to end: PyTorch and ONNX Runtime predictions on
a folder, a glob and a non-image file, drawn images, predictions.json; bad input is one error line."""
import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from _helpers import REPO
from detectron2.config import instantiate

from dicod_d2.config.lazy import load_config

CONFIG = "configs/fashiondet/faster_rcnn/dicod.py"  # its teacher file does not exist: not needed


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / f"tools/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name, argv):
    module = _tool(name)
    return module.main(module.build_parser().parse_args(argv))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = load_config(CONFIG)
    cfg.model.distiller = None
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model_final.pth"
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return str(path)


def test_export_then_predict_with_both_runtimes(checkpoint, tiny_fashiondet, tmp_path, capsys):
    val = tiny_fashiondet / "val"
    inputs = [str(val / "000001.jpg"), str(val / "00000[23].jpg"), str(tmp_path / "broken.jpg")]
    (tmp_path / "broken.jpg").write_text("not an image")
    _run("export_model", ["--config-file", CONFIG, "--checkpoint", checkpoint, "--output",
                          str(tmp_path / "student.onnx")])
    _run("predict", ["--config-file", CONFIG, "--checkpoint", checkpoint, "--input", *inputs,
                     "--output", str(tmp_path / "pt"), "--score-thresh", "0.3", "--batch-size", "2"])
    _run("predict", ["--onnx", str(tmp_path / "student.onnx"), "--input", *inputs,
                     "--output", str(tmp_path / "onnx"), "--score-thresh", "0.3"])
    out = capsys.readouterr().out
    assert out.count("3 images predicted, 1 skipped") == 2 and "broken.jpg" in out
    results = {}
    for run in ("pt", "onnx"):
        assert sorted(p.name for p in (tmp_path / run).glob("*.jpg")) == ["000001.jpg", "000002.jpg", "000003.jpg"]
        results[run] = json.loads((tmp_path / run / "predictions.json").read_text())
        assert results[run] and all(r["score"] >= 0.3 for r in results[run])
        assert {r["file_name"] for r in results[run]} == {str(val / f"00000{i}.jpg") for i in (1, 2, 3)}
        assert {r["category_id"] for r in results[run]} <= set(range(1, 11))
    # batch 2 pads to a common size, so compare the counts per image, not every digit
    assert len(results["pt"]) == pytest.approx(len(results["onnx"]), rel=0.1)


@pytest.mark.parametrize("args, message", [
    (["--input", "x.jpg", "--output", "o"], "give --config-file and --checkpoint"),
    (["--onnx", "missing.onnx", "--input", "*.none", "--output", "o"], "input '*.none' is not a file"),
    (["--onnx", "missing.onnx", "--input", "in.png", "--output", "o"], "ONNX model 'missing.onnx' does not exist"),
    (["--onnx", "bad.onnx", "--input", "in.png", "--output", "o"],
     "ONNX model 'bad.onnx' cannot be loaded by ONNX Runtime"),
])
def test_bad_input_is_one_error_line(args, message, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from dicod_d2.cli import report_user_errors

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    (tmp_path / "bad.onnx").write_text("not an ONNX graph")
    assert report_user_errors(lambda: _run("predict", args)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {message}")
    assert not (tmp_path / "o").exists()


def test_the_script_reports_bad_input_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools/export_model.py"), "--config-file", CONFIG,
                           "--checkpoint", "missing.pth", "--output", "s.onnx"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: checkpoint 'missing.pth' does not exist")
    assert not (tmp_path / "s.onnx").exists()


def _save(path):
    from PIL import Image

    Image.new("RGB", (6, 4)).save(path)
    return path


def test_expand_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    a1, a2 = _save(tmp_path / "a/1.png"), _save(tmp_path / "a/2.jpg")
    (tmp_path / "a/notes.txt").write_text("x")
    b = _save(tmp_path / "b.png")
    got = _tool("predict").expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.png"), str(b)])
    assert got == [a1, a2, b]  # folder images sorted, text file left out, duplicates once
    with pytest.raises(FileNotFoundError, match="missing"):
        _tool("predict").expand_inputs([str(tmp_path / "missing*.jpg")])


class _FrozenHeight(torch.nn.Module):
    """A detector whose traced graph keeps the traced image height (a Split of that size): ONNX
    Runtime fails on an image of another height, as an old Faster R-CNN export did on small images."""

    def forward(self, image):
        rows = image.float().mean(0)  # [H, W]
        (part,) = rows.split([int(rows.shape[0])])
        score = (part.mean() * 0 + 0.9).reshape(1)
        return torch.tensor([[1.0, 1.0, 6.0, 6.0]]), score, torch.zeros(1, dtype=torch.int64)


def test_an_image_onnx_runtime_fails_on_is_skipped_in_one_line(tmp_path, capsys):
    from PIL import Image

    from dicod_d2.export.onnx import export_onnx

    onnx_path = export_onnx(_FrozenHeight(), tmp_path / "frozen.onnx", torch.zeros(3, 16, 16, dtype=torch.uint8),
                            metadata={"input_format": "RGB", "class_names": "thing", "category_ids": "1"})
    Image.new("RGB", (16, 16)).save(tmp_path / "a_fits.png")
    Image.new("RGB", (16, 8)).save(tmp_path / "b_fails.png")
    _run("predict", ["--onnx", str(onnx_path), "--input", str(tmp_path / "a_fits.png"),
                     str(tmp_path / "b_fails.png"), "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert "1 images predicted, 1 skipped" in captured.out
    failed = [line for line in captured.err.splitlines() if "b_fails.png" in line]
    assert len(failed) == 1 and failed[0].startswith("skipped (the model failed on it):")
    assert "ONNX Runtime failed on a 8x16 image" in failed[0]
    results = json.loads((tmp_path / "out/predictions.json").read_text())
    assert [(r["file_name"], r["category_id"]) for r in results] == [(str(tmp_path / "a_fits.png"), 1)]

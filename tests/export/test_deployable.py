"""deployable_student (the demo's "deployable student" line and the benchmark's export section):
exports, evaluates both runtimes with detectron2's COCO evaluator, times them, reports sizes."""
import torch
from detectron2.config import instantiate

from dicod_d2.config.lazy import load_config
from dicod_d2.export.deployable import deployable_line, deployable_student, latency_ms

CONFIG = "configs/fashiondet/retinanet/dicod.py"


def test_deployable_student_on_tiny_val(tmp_path, tiny_fashiondet):
    cfg = load_config(CONFIG)
    cfg.model.distiller = None
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp_path / "model_final.pth")
    r = deployable_student(CONFIG, str(tmp_path / "model_final.pth"), "fashiondet_tiny_val", tmp_path / "out",
                           threads=(1,), latency_images=3, ap_limit=4)
    assert (tmp_path / "out/student.onnx").is_file() and r["onnx_mb"] > 0.1 and r["checkpoint_mb"] > 0.1
    assert r["dataset"] == "fashiondet_tiny_val"
    assert 0 <= r["ap"]["pytorch"] <= 100 and abs(r["ap"]["onnx"] - r["ap"]["pytorch"]) <= 0.1
    for runtime in ("pytorch", "onnx"):
        t = r["latency_ms"][runtime]["1"]
        assert 0 < t["p50"] <= t["p90"] and t["images"] == 3
    line = deployable_line(r)
    assert line.startswith("Deployable student: exported to ONNX") and f"{r['ap']['onnx']:.2f}" in line


def test_latency_percentiles():
    calls = []
    stats = latency_ms(lambda image: calls.append(image), list(range(10)), warmup=2)
    assert len(calls) == 12 and stats["images"] == 10
    assert 0 <= stats["p50"] <= stats["p90"] and stats["mean"] >= 0

"""tools/benchmark.py at tiny sizes: the JSON has sane, positive numbers (not a timed test), and the
helpers it relies on (reference crop, peak memory) measure what they claim."""
import importlib.util
import json
import math

import pytest
import torch
from _helpers import REPO
from benchmarking.reference import random_boxes, reference_crop_replicate
from benchmarking.students import DEFAULT_STUDENTS, build_student, synthetic_batches
from benchmarking.timing import peak_memory_bytes

from dicod_d2.layers import crop_boxes_differentiable


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", REPO / "tools/benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_crop_matches_the_projects_crop_values_and_box_gradients():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 30, 41, generator=gen) * 255
    boxes, index = random_boxes(6, 2, 30, 41, gen)
    grads, crops = [], []
    for crop in (crop_boxes_differentiable, reference_crop_replicate):
        b = boxes.clone().requires_grad_(True)
        out = crop(images, b, index, 7)
        (out * torch.linspace(0, 1, 7)).sum().backward()
        crops.append(out.detach())
        grads.append(b.grad)
    torch.testing.assert_close(crops[1], crops[0], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-2)


def test_peak_memory_sees_a_temporary_tensor():
    def fn():
        a = torch.ones(1_000_000)  # 4 MB, freed before the end
        return float(a.sum())

    assert 4_000_000 <= peak_memory_bytes(fn, "cpu") < 8_000_000


def _numbers(tree, path=""):
    """(path, value) of every int / float leaf of a JSON tree (bools excluded)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _numbers(value, f"{path}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


def test_number_walker_finds_a_bad_leaf():
    bad = {"a": [{"median_s": 0.1}, {"median_s": float("nan")}], "ok": True}
    assert [p for p, v in _numbers(bad) if not math.isfinite(v)] == [".a[1].median_s"]


def test_quick_benchmark_writes_sane_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert _tool().main(["--quick", "--students", "faster_rcnn", "--threads", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "| crop |" in capsys.readouterr().out
    res = json.loads(out.read_text())
    numbers = list(_numbers(res))
    assert len(numbers) > 50
    assert [p for p, v in numbers if not math.isfinite(v) or v < 0] == []
    assert res["machine"]["torch"] == torch.__version__ and res["machine"]["cpu_cores"] >= 1
    assert res["machine"]["cpu"] and res["machine"]["torch_threads"] == 1
    assert "profiler" in res["memory_method"] and "random weights" in res["teacher"]["weights"]
    assert res["note"] == "" and set(res["section_wall_s"]) == {"crop", "step", "inference"}
    assert {r["op"] for r in res["crop"]} == {"kd_cls", "kd_loc"}
    for r in res["crop"]:  # the KD_loc crop's time is partly its sampler's, and bounded by it
        if r["op"] == "kd_loc" and isinstance(r["reference"], dict):
            assert 0 < r["sampler_share"] < 1 and r["speedup_bound"] > r["speedup"]
    for r in res["crop"]:
        assert r["crops_per_s"] > 0 and r["ours"]["median_s"] > 0 and r["ours"]["peak_bytes"] > 0
        assert r["reference"]["peak_bytes"] > r["ours"]["peak_bytes"]  # the per-box image copies
        assert r["speedup"] > 0 and r["max_abs_diff"] < 1e-2
    levers = res["crop_levers"]
    for lever in ("gt_crop_calls", "loc_crop_order", "gt_crop_sharing", "teacher_chunk_size", "teacher_weight_grad"):
        assert len(levers[lever]) >= 2 and all(v["median_s"] > 0 for v in levers[lever].values())
    assert levers["teacher_format"].startswith("skipped")  # a GPU lever
    step = res["step"]["faster_rcnn"]
    assert step["status"] == "ok"
    variants = step["variants"]
    assert {"baseline", "kd_cls", "loc_kd_loc", "dicod", "dicod_teacher_weight_grad"} <= set(variants)
    assert variants["baseline"]["ratio_to_baseline"] == pytest.approx(1.0)
    for name, v in variants.items():
        assert v["median_s"] > 0 and v["ratio_to_baseline"] > 0
        if name != "baseline":
            assert v["num_positives"] > 0 and v["teacher_forward_s"] > 0 and 0 < v["teacher_share"] < 1
    assert variants["loc_kd_loc"]["teacher_backward_s"] > 0
    inf = res["inference"]["faster_rcnn"]
    assert inf["same_state_dict_keys"] is True and inf["dicod"]["teacher_keys"] == 0
    assert inf["dicod"]["checkpoint_bytes"] == inf["baseline"]["checkpoint_bytes"] > 0
    assert inf["dicod"]["s_per_image"] > 0 and inf["time_ratio"] > 0


def test_synthetic_batches_have_the_requested_gt_counts():
    batches = synthetic_batches(3, 4, 64, gt_per_image=(5, 7))
    counts = [len(x["instances"]) for batch in batches for x in batch]
    assert len(counts) == 12 and min(counts) >= 5 and max(counts) <= 7 and len(set(counts)) > 1
    for batch in batches:
        for x in batch:
            boxes = x["instances"].gt_boxes.tensor
            assert x["image"].shape == (3, 64, 64) and x["image"].dtype == torch.uint8
            assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 64
    with pytest.raises(ValueError, match="gt_per_image"):
        synthetic_batches(1, 1, 64, gt_per_image=(4, 2))


@pytest.mark.parametrize("name", ["faster_rcnn_r50_coco", "faster_rcnn_mobilenetv2_coco"])
def test_coco_scale_students_build_without_weight_files(name):
    from dicod_d2.modeling.meta_arch.rcnn import DICODGeneralizedRCNN

    model = build_student(name, "cpu")
    assert isinstance(model, DICODGeneralizedRCNN) and model.distiller is None
    assert model.roi_heads.num_classes == 10 and model.roi_heads.batch_size_per_image == 512
    assert name not in DEFAULT_STUDENTS


def test_bad_gt_per_image_is_a_clear_error(tmp_path, capsys):
    assert _tool().main(["--gt-per-image", "8", "--out", str(tmp_path / "b.json")]) == 2
    assert "--gt-per-image must be LO,HI" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_unknown_section_is_a_clear_error(tmp_path, capsys):
    assert _tool().main(["--sections", "crops", "--out", str(tmp_path / "b.json")]) == 2
    assert "unknown section(s)/student(s) ['crops']" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("plain_step", [False, True])
def test_step_time_comes_from_an_uninstrumented_step_when_asked(tmp_path, monkeypatch, plain_step):
    """On CUDA the teacher timer's synchronisations slow the step, so ``step_s`` must come from a step
    run without the timer; on CPU (``plain_step=False``) the instrumented step gives both."""
    import benchmarking.step as step_module

    from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
    from dicod_d2.modeling.distiller import DICODDistiller
    from dicod_d2.teacher import FrozenTeacher, write_random_teacher

    teacher = FrozenTeacher.from_file(
        write_random_teacher(tmp_path / "t.pth", FASHION_MNIST_CLASSES, "resnet_tiny", 32))
    model = build_student("faster_rcnn", "cpu").train()
    distiller = DICODDistiller(teacher, input_format=model.input_format)
    batch = synthetic_batches(1, 2, 128)[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    instrumented = []  # per train_step call: was the teacher wrapped by the timer?
    real_step = step_module.train_step

    def spy(model_, optimizer_, batch_):
        instrumented.append("logits" in vars(distiller.teacher))
        real_step(model_, optimizer_, batch_)

    monkeypatch.setattr(step_module, "train_step", spy)
    record = step_module._timed_step(model, optimizer, batch, distiller, "dicod", "cpu", plain_step=plain_step)
    assert instrumented == ([True, False] if plain_step else [True])
    assert record["step_s"] > 0 and record["instrumented_step_s"] > 0 and record["teacher_forward_s"] > 0
    assert (record["step_s"] == record["instrumented_step_s"]) is (not plain_step)
    assert model.distiller is None and "logits" not in vars(distiller.teacher)


def test_profile_counts_host_reads_and_top_level_operator_launches():
    from benchmarking.profile import count_calls
    from torch.profiler import ProfilerActivity, profile

    x = torch.tensor([3.0, -1.0, 3.0, 2.0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):  # two "steps"
            float(x.sum())  # a scalar read
            x[x > 0]  # boolean-mask indexing: a nonzero inside aten::index
            torch.unique(x)  # output size depends on the values
            torch.nn.functional.linear(x[None], torch.ones(2, 4))  # calls other operators inside
    counts = count_calls(prof.events(), steps=2)
    assert counts["host_reads_by_op"] == {"aten::_local_scalar_dense": 1, "aten::_unique2": 1, "aten::nonzero": 1}
    per_step = counts["per_step"]
    assert per_step["host_reads"] == 3
    # sum, item, gt, index, _unique2, unsqueeze (x[None]), ones, linear: the operators called from
    # Python, not those they call inside (nonzero, mm, ...)
    assert per_step["operator_launches"] == 8
    assert per_step["kernel_launches"] == per_step["host_syncs"] == 0  # CPU


def test_profile_section_reports_host_reads_and_launches_per_student(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert _tool().main(["--quick", "--sections", "profile", "--students", "faster_rcnn", "--out", str(out)]) == 0
    assert "| host_reads |" in capsys.readouterr().out
    res = json.loads(out.read_text())["profile"]["faster_rcnn"]
    assert res["status"] == "ok" and set(res["variants"]) == {"baseline", "dicod"}
    base, dicod = res["variants"]["baseline"], res["variants"]["dicod"]
    for v in (base, dicod):
        times = [op["self_s_per_step"] for op in v["top_ops"]]
        assert times and times == sorted(times, reverse=True) and all(t > 0 for t in times)
        assert all(op["calls_per_step"] > 0 for op in v["top_ops"])
        assert v["per_step"]["operator_launches"] > 100
        assert v["per_step"]["host_reads"] == pytest.approx(sum(v["host_reads_by_op"].values()))
    for label, diff in res["dicod_minus_baseline"].items():
        assert diff == pytest.approx(dicod["per_step"][label] - base["per_step"][label])
    # the distiller runs the teacher and the crops: more operators in the step
    assert res["dicod_minus_baseline"]["operator_launches"] > 0
    assert dicod["per_step"]["kernel_launches"] == base["per_step"]["kernel_launches"] == 0  # CPU

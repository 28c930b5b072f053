"""The detectron2 that tools/install_detectron2.py installs stands on its own (each check runs in a
fresh interpreter that never imports dicod_d2), and the installer's patches apply or fail clearly."""
import difflib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _helpers import REPO

spec = importlib.util.spec_from_file_location("install_detectron2", REPO / "tools/install_detectron2.py")
installer = importlib.util.module_from_spec(spec)
sys.modules["install_detectron2"] = installer  # dataclasses look their module up
spec.loader.exec_module(installer)


def _detectron2_alone(code: str) -> str:
    """Run ``code`` in a fresh interpreter; it must not import dicod_d2. Returns its stdout."""
    code = textwrap.dedent(code) + (
        "\nimport sys\nassert not [m for m in sys.modules if m.split('.')[0] == 'dicod_d2']\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_detectron2_imports_and_logs_the_class_histogram_without_this_project():
    out = _detectron2_alone(
        """
        import logging, sys
        import detectron2.data, detectron2.engine, detectron2.evaluation, detectron2.export
        import detectron2.model_zoo, detectron2.modeling
        import detectron2.data.transforms as T
        from detectron2.data.build import print_instances_class_histogram

        print(T.ExtentTransform.__init__.__defaults__)
        print(detectron2.model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml"))
        logging.basicConfig(stream=sys.stdout, level=logging.INFO)
        dicts = [{"annotations": [{"category_id": 0}, {"category_id": 1}, {"category_id": 1}]}]
        print_instances_class_histogram(dicts, ["shirt", "coat"])  # np.int before the numpy-2 patch
        """
    )
    defaults, config, histogram = out.split("\n", 2)
    from PIL import Image

    assert defaults == f"({int(Image.BILINEAR)}, 0)"  # the Pillow patch: BILINEAR, not the removed LINEAR
    assert config.endswith("retinanet_R_50_FPN_1x.yaml")
    assert "Distribution of instances among all 2 categories" in histogram
    assert "shirt" in histogram and "coat" in histogram and "total" in histogram


def test_map_dataset_with_a_mapper_that_drops_items():
    out = _detectron2_alone(
        """
        from detectron2.data.common import MapDataset

        data = MapDataset(list(range(12)), lambda x: None if x % 3 == 0 else 10 * x)
        print(*[data[i] for i in range(12)])
        """
    )
    values = [int(v) for v in out.split()]
    assert len(values) == 12
    assert all(v % 10 == 0 and (v // 10) % 3 != 0 for v in values)
    kept = [data for i, data in enumerate(values) if i % 3]
    assert kept == [10 * i for i in range(12) if i % 3]


def test_resume_restores_a_torch_multisteplr_in_the_lr_scheduler_hook(tmp_path):
    out = _detectron2_alone(
        f"""
        import torch
        from torch import nn
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.engine import SimpleTrainer, hooks


        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(2, 1)

            def forward(self, batch):
                return {{"loss": self.linear(batch).pow(2).mean()}}


        def batches():
            while True:
                yield torch.ones(4, 2)


        def trainer():
            model = Model()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3], gamma=0.1)
            trainer = SimpleTrainer(model, batches(), optimizer)
            trainer.register_hooks([hooks.LRScheduler(optimizer, scheduler)])
            checkpointer = DetectionCheckpointer(model, {str(tmp_path)!r}, trainer=trainer)
            return trainer, scheduler, optimizer, checkpointer


        first, scheduler, _, checkpointer = trainer()
        first.train(0, 5)
        checkpointer.save("model_final")
        _, resumed, optimizer, checkpointer = trainer()
        checkpointer.resume_or_load("", resume=True)
        print(scheduler.last_epoch, resumed.last_epoch, optimizer.param_groups[0]["lr"])
        """
    )
    saved, restored, lr = out.split()
    assert int(saved) == 5 and int(restored) == 5
    assert float(lr) == pytest.approx(0.01)  # past the milestone at 3


def test_tracing_adapter_imports_without_caffe2():
    out = _detectron2_alone(
        """
        import importlib.util
        import detectron2.export.flatten
        from detectron2.export import TracingAdapter, scripting_with_instances

        print(importlib.util.find_spec("caffe2") is None, TracingAdapter.__module__)
        """
    )
    assert out.split() == ["True", "detectron2.export.flatten"]


def test_placeholder_answers_default_setup_queries():
    from detectron2 import _C
    from detectron2.utils.collect_env import collect_env_info

    assert _C.has_cuda() is False
    assert "without compiled ops" in _C.get_compiler_version()
    assert "without compiled ops" in _C.get_cuda_version()
    assert "detectron2" in collect_env_info()


@pytest.mark.parametrize("op", ["nms_rotated", "box_iou_rotated", "InstanceAnnotation"])
def test_compiled_ops_raise_an_error_naming_the_op(op):
    from detectron2 import _C

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [11.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(_C.CompiledOpUnavailable) as info:
        if op == "nms_rotated":
            from detectron2.layers import nms_rotated

            nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)
        elif op == "box_iou_rotated":
            from detectron2.layers.rotated_boxes import pairwise_iou_rotated

            pairwise_iou_rotated(boxes, boxes)
        else:
            from detectron2.evaluation.fast_eval_api import COCOeval_opt
            from pycocotools.coco import COCO

            gt = COCO()
            gt.dataset = {
                "images": [{"id": 1, "width": 20, "height": 20}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5],
                                 "area": 25, "iscrowd": 0}],
            }
            gt.createIndex()
            dt = gt.loadRes([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1.0}])
            COCOeval_opt(gt, dt, "bbox").evaluate()
    assert op in str(info.value) and "installed without compiled ops" in str(info.value)


@pytest.mark.parametrize("patch", installer.patch_files(), ids=lambda p: p.name)
def test_each_patch_states_its_reason_and_is_installed(patch):
    text = patch.read_text()
    assert text.startswith("# ") and len(text.splitlines()[0]) > 20
    import detectron2

    site = Path(detectron2.__file__).parent.parent
    for file_patch in installer.parse_patch(text, patch.name):
        if not file_patch.path.startswith("detectron2/"):
            continue  # setup.py
        installed = (site / file_patch.path).read_text().splitlines()
        for _, lines in file_patch.hunks:
            added = [line[1:] for line in lines if line.startswith("+")]
            assert all(line in installed for line in added), (patch.name, file_patch.path)


def _diff(path, old: list[str], new: list[str]) -> str:
    return "# reason\n" + "".join(
        difflib.unified_diff(old, new, f"a/{path}" if old else "/dev/null", f"b/{path}")
    )


def test_apply_patch_edits_creates_and_refuses_a_mismatch(tmp_path):
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    old = [f"line {i}\n" for i in range(30)]
    (tree / "pkg/a.py").write_text("".join(old))
    new = old[:3] + ["inserted\n"] + old[3:20] + old[21:]
    patch = tmp_path / "01.patch"
    patch.write_text(_diff("pkg/a.py", old, new) + _diff("pkg/b.py", [], ["created\n"]))

    assert installer.apply_patch(tree, patch) == ["pkg/a.py", "pkg/b.py"]
    assert (tree / "pkg/a.py").read_text() == "".join(new)
    assert (tree / "pkg/b.py").read_text() == "created\n"
    with pytest.raises(installer.PatchError, match=r"error: 01.patch: hunk at line 1 of pkg/a.py does not match"):
        installer.apply_patch(tree, patch)
    (tree / "pkg/a.py").write_text("".join(old))
    with pytest.raises(installer.PatchError, match=r"01.patch: pkg/b.py already exists"):
        installer.apply_patch(tree, patch)

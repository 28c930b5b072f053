"""Every training config loads, round-trips through LazyConfig.save/load and builds its model.

DICOD configs get a random "resnet_tiny" teacher file with the dataset's class names. Models are
built without ImageNet weight files (every ``weights`` / ``init_weights`` key set to None: the files
are local and absent here). Also: a variant differs from its baseline only in the distillation keys, and the
COCO schedules are the paper's (Section 4.1 and supplementary S3).
"""
import inspect
import re
from pathlib import Path

import pytest
import torch
from _helpers import REPO
from detectron2.config import LazyConfig, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from dicod_d2.config.lazy import load_config
from dicod_d2.data.datasets import thing_classes
from dicod_d2.modeling.distiller import PAPER_SETTINGS, DICODDistiller
from dicod_d2.modeling.variants import CONTROLS, VARIANTS
from dicod_d2.teacher import TeacherMeta, build_classifier, save_teacher_file
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

CONFIGS = REPO / "configs"
ALL = sorted(
    str(p.relative_to(CONFIGS))
    for p in CONFIGS.rglob("*.py")
    if p.relative_to(CONFIGS).parts[0] != "common" and not p.name.startswith("_")
)
#: keys in which a DICOD variant may differ from its baseline
DETECTORS = ("coco", "fashiondet")
DISTILLATION_KEYS = {"model.distiller", "model._target_", "model.roi_heads._target_", "train.output_dir"}
COCO_IMAGES = 117266
#: COCO baselines: (epochs over the dataset ×repeat, ÷10 epochs, batch size, lr, repeat), the paper's Section 4.1 and supplementary S3
COCO_SCHEDULES = {
    "faster_rcnn_mobilenetv2_1x": (12, (8, 11), 16, 0.02, 1),
    "faster_rcnn_qr50_1x": (12, (8, 11), 32, 0.04, 1),
    "faster_rcnn_qr50_2x": (24, (16, 22), 32, 0.04, 1),
    "faster_rcnn_qr50_4x": (48, (32, 44), 32, 0.04, 1),
    "faster_rcnn_r50_2x": (24, (16, 22), 16, 0.02, 1),
    "retinanet_r50_2x": (24, (16, 22), 16, 0.01, 1),
    "ssd300": (24, (16, 22), 64, 2e-3, 5),
    "ssd512": (24, (16, 22), 64, 2e-3, 5),
}


def _baseline_of(rel: str) -> str | None:
    """<dataset>/<student>/<variant>.py -> <dataset>/<student>/baseline.py (None for a baseline)."""
    path = Path(rel)
    return None if path.stem == "baseline" else str(path.with_name("baseline.py"))


WEIGHT_KEYS = ("weights", "init_weights")


def _drop_local_weights(node) -> None:
    """Set every ImageNet weight-file key (``weights``, ``init_weights``) of a config to None."""
    if isinstance(node, DictConfig):
        for key in node:
            if key in WEIGHT_KEYS and isinstance(node[key], str):
                node[key] = None
            else:
                _drop_local_weights(node._get_node(key))
    elif isinstance(node, ListConfig):
        for item in node:
            _drop_local_weights(item)


def _teacher(folder: Path, class_names: list[str]) -> str:
    torch.manual_seed(0)
    model = build_classifier("resnet_tiny", len(class_names))
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=len(class_names), class_names=class_names, input_size=16,
        channel_order="RGB", pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    path = folder / "teacher.pth"
    save_teacher_file(path, model, meta)
    return str(path)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, str]:
    """A teacher file per dataset, with the dataset's class names."""
    paths = {}
    for top, dataset in (("coco", "coco_2017_train"), ("fashiondet", "fashiondet_train")):
        names = thing_classes(dataset)  # registers FashionDet on import
        paths[top] = _teacher(tmp_path_factory.mktemp(top), names)
    return paths


VARIANT_NAMES = tuple(VARIANTS)
FASHIONDET_STUDENTS = ("faster_rcnn", "faster_rcnn_lite0", "faster_rcnn_mobilenetv2", "faster_rcnn_qr50", "retinanet", "ssd")


def test_configs_found():
    """Every student has its five configs on COCO (Section 4.1 and supplementary S3) and on FashionDet."""
    for student in COCO_SCHEDULES:
        assert {f"coco/{student}/{v}.py" for v in VARIANT_NAMES} <= set(ALL), student
    for student in FASHIONDET_STUDENTS:
        assert {f"fashiondet/{student}/{v}.py" for v in VARIANT_NAMES} <= set(ALL), student


@pytest.mark.parametrize("rel", ALL)
def test_config_loads_round_trips_and_builds(rel, teachers, tmp_path):
    cfg = load_config(CONFIGS / rel)
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{rel} has no '{key}'"
    is_detector = rel.split("/")[0] in DETECTORS
    assert not is_detector or cfg.dataloader.train.mapper.image_format == cfg.model.input_format, (
        f"{rel}: the data mapper reads {cfg.dataloader.train.mapper.image_format} images but the "
        f"model expects {cfg.model.input_format}"
    )
    saved = tmp_path / "config.yaml"
    LazyConfig.save(cfg, str(saved))
    loaded = LazyConfig.load(str(saved))
    LazyConfig.save(loaded, str(tmp_path / "again.yaml"))
    assert saved.read_text() == (tmp_path / "again.yaml").read_text()

    _drop_local_weights(loaded.model)
    has_teacher = "distiller" in loaded.model and loaded.model.distiller.teacher is not None
    if has_teacher:
        loaded.model.distiller.teacher.path = teachers[rel.split("/")[0]]
    model = instantiate(loaded.model)
    assert isinstance(model, torch.nn.Module)
    distiller = getattr(model, "distiller", None)
    assert ("distiller" in loaded.model) == isinstance(distiller, DICODDistiller)
    if distiller is not None:
        assert distiller.input_format == model.input_format
    if has_teacher:
        assert distiller.teacher.path == teachers[rel.split("/")[0]]
    elif distiller is not None:  # the label-smoothing control needs no teacher
        assert distiller.teacher is None and distiller.kd_cls_target == "label_smoothing"


def _flat(cfg) -> dict:
    """Every leaf key of a config (``_target_`` objects as names), dotted."""
    container = OmegaConf.to_container(cfg, resolve=False)

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{prefix}{k}.")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{prefix}{i}.")
        else:
            yield prefix[:-1], getattr(node, "__qualname__", node)

    return dict(walk(container, ""))


@pytest.mark.parametrize("rel", [c for c in ALL if c.split("/")[0] in DETECTORS and _baseline_of(c)])
def test_variant_differs_from_baseline_only_in_distillation_keys(rel):
    variant = _flat(load_config(CONFIGS / rel))
    baseline = _flat(load_config(CONFIGS / _baseline_of(rel)))
    changed = {k for k in variant.keys() | baseline.keys() if variant.get(k) != baseline.get(k)}
    outside = {k for k in changed if not any(k == d or k.startswith(d + ".") for d in DISTILLATION_KEYS)}
    assert not outside, f"{rel} differs from its baseline outside the distillation keys: {sorted(outside)}"
    assert any(k.startswith("model.distiller.") for k in changed)
    assert variant["train.output_dir"] != baseline["train.output_dir"]


@pytest.mark.parametrize("rel", [c for c in ALL if c.split("/")[0] in DETECTORS and _baseline_of(c)])
def test_variants_use_the_papers_settings_at_the_authors_balance(rel):
    """COCO and FashionDet alike: T = 2, λ_cls = 0.4, λ_loc = 0.15, the detector's normaliser; SSD's
    L_loc_pix on the image's 0-255 scale."""
    d = load_config(CONFIGS / rel).model.distiller
    assert d.normalizer == "detector" and (d.kd_cls_weight, d.temperature) == (0.4, 2.0), rel
    if d.teacher is not None:
        assert d.loc_weight == 0.15, rel
        assert d.loc_pix_space == ("image" if "ssd" in rel else "teacher"), rel


def test_the_papers_settings_and_ssds_pixel_space_are_written_once():
    """T, λ_cls and λ_loc live in PAPER_SETTINGS (the distiller's defaults, which the configs write);
    SSD's L_loc_pix pixel space in its model config, passed to dicod_variant by the SSD variants."""
    defaults = inspect.signature(DICODDistiller).parameters
    assert {k: defaults[k].default for k in PAPER_SETTINGS} == PAPER_SETTINGS == {
        "temperature": 2.0, "kd_cls_weight": 0.4, "loc_weight": 0.15}
    for path in sorted(CONFIGS.rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"\b(temperature|kd_cls_weight|loc_weight)\s*=\s*\d|loc_pix_space\s*=\s*.image", text), (
            f"{path} writes a setting that has one source (PAPER_SETTINGS, the family's LOC_PIX_SPACE)")
    ssd_variants = [c for c in ALL if c.split("/")[1].startswith("ssd") and _baseline_of(c)]
    assert ssd_variants
    for rel in ssd_variants:
        assert "loc_pix_space=LOC_PIX_SPACE" in (CONFIGS / rel).read_text(), rel


@pytest.mark.parametrize("student", sorted(COCO_SCHEDULES))
def test_coco_schedule_is_the_papers(student):
    path = CONFIGS / "coco" / student / "baseline.py"
    assert path.exists(), f"{path}: every student of the paper's Section 4 has a COCO baseline config"
    epochs, steps, batch, lr, repeat = COCO_SCHEDULES[student]
    cfg = load_config(path)
    per_epoch = COCO_IMAGES * repeat / batch
    assert cfg.dataloader.train.total_batch_size == batch
    assert cfg.optimizer.lr == pytest.approx(lr)
    assert cfg.train.max_iter / per_epoch == pytest.approx(epochs, abs=1e-3)
    milestones = cfg.lr_multiplier.scheduler.milestones
    assert [m / per_epoch for m in milestones] == pytest.approx(list(steps), abs=1e-3)
    assert list(cfg.lr_multiplier.scheduler["values"]) == pytest.approx([1.0, 0.1, 0.01])
    assert cfg.lr_multiplier.warmup_length * cfg.train.max_iter == pytest.approx(500)


def test_detector_configs_follow_one_layout():
    """Both datasets: configs/<dataset>/<student>/<variant>.py, the variants of the shared table
    (plus FashionDet's controls)."""
    for rel in ALL:
        parts = Path(rel).parts
        if parts[0] in DETECTORS:
            assert len(parts) == 3 and Path(rel).stem in (*VARIANTS, *CONTROLS), rel

"""FashionDet: Fashion-MNIST loading, the generator, its files on disk, registration, the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dicod_d2.data import fashiondet
from dicod_d2.data.datasets import get_data_root, register_all_fashiondet, register_fashiondet
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES, _load_cached, load_fashion_mnist
from dicod_d2.data.fashiondet import (
    PHOTO_NAMES,
    PRESET_DIRNAMES,
    FashionDetSpec,
    generate_fashiondet,
    generate_split,
    preset_specs,
    split_paths,
)
from dicod_d2.errors import ConfigError, DataError, UserError

REPO = Path(__file__).resolve().parents[2]
SMALL = FashionDetSpec(num_images=6, image_size=96, seed=3)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _load(json_file: Path) -> dict:
    return json.loads(json_file.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict[str, dict]:
    """A 256-px train split (30 images), val and test splits (10 images each), loaded as dicts."""
    out = tmp_path_factory.mktemp("fashiondet")
    specs = {"train": FashionDetSpec(num_images=30), "val": FashionDetSpec(num_images=10),
             "test": FashionDetSpec(num_images=10)}
    paths = generate_fashiondet(out, specs, seed=11)
    return {split: {"json": _load(p), "path": p, "out": out} for split, p in paths.items()}


# --------------------------------------------------------------------------- Fashion-MNIST


def test_load_fashion_mnist_both_splits():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert np.array_equal(np.bincount(labels), np.full(10, n // 10))
        assert images.max() == 255 and images[:, 0, 0].mean() < 5  # black background
    assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[6] == "Shirt"
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("val")


def test_missing_fashion_mnist_names_file_and_package(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist("test")
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)


def test_background_photos_load_offline():
    photos = fashiondet._photos()
    assert len(photos) == len(PHOTO_NAMES)
    assert all(p.mode == "RGB" and min(p.size) >= 100 for p in photos)


# --------------------------------------------------------------------------- generator


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_split(tmp_path / name, "train", dataclasses.replace(SMALL, seed=seed))
    a, b, c = (_hashes(tmp_path / n) for n in "abc")
    assert len(a) == SMALL.num_images + 1 and a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)


def test_pycocotools_loads_it(dataset):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(dataset["train"]["path"]))
    assert len(coco.getImgIds()) == 30
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(FASHION_MNIST_CLASSES)
    assert coco.getCatIds() == list(range(1, 11))
    assert len(coco.getAnnIds()) == len(dataset["train"]["json"]["annotations"])


def test_every_image_has_objects_within_the_configured_range(dataset):
    data = dataset["train"]["json"]
    counts = np.bincount([a["image_id"] for a in data["annotations"]], minlength=31)[1:]
    assert counts.min() >= 1 and counts.max() <= 8
    assert len(set(counts.tolist())) >= 4  # varied


def test_boxes_inside_image_positive_and_consistent(dataset):
    for split, d in dataset.items():
        image_root = split_paths(d["out"], split)[1]
        size = {im["id"]: (im["width"], im["height"]) for im in d["json"]["images"]}
        for im in d["json"]["images"]:
            with Image.open(image_root / im["file_name"]) as f:
                assert f.size == (im["width"], im["height"]) and f.format == "JPEG"
        for ann in d["json"]["annotations"]:
            x, y, w, h = ann["bbox"]
            width, height = size[ann["image_id"]]
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= width and y + h <= height
            assert ann["area"] == pytest.approx(w * h)
            assert ann["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]
            assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= 10
            assert ann["visible_fraction"] >= 0.7 - 1e-6


def test_unoccluded_boxes_are_tight_around_the_source_item(dataset):
    """A fully visible object's box has the aspect ratio of its Fashion-MNIST item's mask box."""
    items, _ = load_fashion_mnist("train")
    checked = 0
    for ann in dataset["train"]["json"]["annotations"]:
        w, h = ann["bbox"][2:]
        if ann["visible_fraction"] < 1 or min(w, h) < 24:
            continue
        mask = items[ann["source_index"]] >= 33
        h0 = np.ptp(np.flatnonzero(mask.any(1))) + 1
        w0 = np.ptp(np.flatnonzero(mask.any(0))) + 1
        assert h / w == pytest.approx(h0 / w0, rel=0.15), ann
        checked += 1
    assert checked >= 10


def test_areas_cover_small_medium_and_large(dataset):
    areas = np.array([a["area"] for a in dataset["train"]["json"]["annotations"]])
    fractions = [
        (areas < 32**2).mean(),
        ((areas >= 32**2) & (areas < 96**2)).mean(),
        (areas >= 96**2).mean(),
    ]
    assert min(fractions) >= 0.05, fractions


def test_classes_balanced(dataset):
    labels = [a["category_id"] for a in dataset["train"]["json"]["annotations"]]
    counts = np.bincount(labels, minlength=11)[1:]
    assert counts.max() - counts.min() <= 0.2 * counts.mean() + 2, counts


def test_val_and_test_objects_come_from_the_test_split(dataset):
    labels = {s: load_fashion_mnist(s)[1] for s in ("train", "test")}
    for split, source in (("train", "train"), ("val", "test"), ("test", "test")):
        data = dataset[split]["json"]
        assert data["info"]["source_split"] == source
        ids = np.array([a["source_index"] for a in data["annotations"]])
        cats = np.array([a["category_id"] - 1 for a in data["annotations"]])
        assert ids.max() < len(labels[source])
        assert np.array_equal(labels[source][ids], cats)
    # the check above discriminates: val indices read against the train labels mostly disagree
    val = dataset["val"]["json"]["annotations"]
    wrong = [labels["train"][a["source_index"]] != a["category_id"] - 1 for a in val]
    assert np.mean(wrong) > 0.5


def test_test_split_is_new_images_of_the_val_size(dataset):
    val, test = dataset["val"]["json"], dataset["test"]["json"]
    assert len(test["images"]) == len(val["images"])
    layout = {s: [(a["image_id"], a["source_index"], tuple(a["bbox"])) for a in d["annotations"]]
              for s, d in (("val", val), ("test", test))}
    assert layout["val"] != layout["test"]  # its own random stream, not a copy of val
    out = dataset["test"]["out"]
    assert _hashes(out / "val").keys() == _hashes(out / "test").keys()  # same file names ...
    assert set(_hashes(out / "val").values()).isdisjoint(_hashes(out / "test").values())  # ... other images


def test_second_call_is_a_noop_other_spec_regenerates(tmp_path):
    json_file = generate_split(tmp_path, "val", SMALL)
    stamp = json_file.stat().st_mtime_ns
    image_stamp = (tmp_path / "val" / "000001.jpg").stat().st_mtime_ns
    assert generate_split(tmp_path, "val", SMALL) == json_file
    assert json_file.stat().st_mtime_ns == stamp
    assert (tmp_path / "val" / "000001.jpg").stat().st_mtime_ns == image_stamp

    other = dataclasses.replace(SMALL, num_images=4, seed=5)
    generate_split(tmp_path, "val", other)
    data = _load(json_file)
    assert data["info"]["spec"] == dataclasses.asdict(other)
    assert len(data["images"]) == 4 and len(list((tmp_path / "val").iterdir())) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _failing_writer(monkeypatch, after: int):
    real, calls = fashiondet._write_jpeg, []

    def write(path, image, quality):
        calls.append(path)
        if len(calls) > after:
            raise OSError("disk full (simulated)")
        real(path, image, quality)

    monkeypatch.setattr(fashiondet, "_write_jpeg", write)


def test_failure_mid_generation_leaves_nothing(tmp_path, monkeypatch):
    _failing_writer(monkeypatch, after=3)
    with pytest.raises(OSError, match="simulated"):
        generate_split(tmp_path / "ds", "train", SMALL)
    assert [p for p in (tmp_path / "ds").rglob("*") if p.is_file()] == []
    assert not (tmp_path / "ds" / "train").exists()


def test_failed_regeneration_keeps_the_previous_split(tmp_path, monkeypatch):
    generate_split(tmp_path, "train", SMALL)
    before = _hashes(tmp_path)
    _failing_writer(monkeypatch, after=2)
    with pytest.raises(OSError, match="simulated"):
        generate_split(tmp_path, "train", dataclasses.replace(SMALL, seed=99))
    assert _hashes(tmp_path) == before


def test_invalid_spec_and_unknown_names_are_explained():
    with pytest.raises(ConfigError, match="max_objects"):
        FashionDetSpec(num_images=2, min_objects=3, max_objects=2)
    with pytest.raises(ConfigError, match="min_object_size"):
        FashionDetSpec(num_images=2, image_size=32, min_object_size=30)
    with pytest.raises(ConfigError, match="unknown FashionDet preset"):
        preset_specs("huge")
    with pytest.raises(ValueError, match="unknown FashionDet split") as info:
        generate_split("unused", "holdout", SMALL)  # the split names come from our code: a bug
    assert not isinstance(info.value, UserError)


def test_inconsistent_fashion_mnist_files_are_a_data_error(tmp_path):
    for name, header, items in (("train-images-idx3-ubyte.gz", 16, 3 * 28 * 28),
                                ("train-labels-idx1-ubyte.gz", 8, 2)):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(bytes(header + items))
    with pytest.raises(DataError, match="inconsistent: 3 images but 2 labels. Reinstall"):
        _load_cached(str(tmp_path), "train")


def test_presets():
    demo = preset_specs("demo")
    assert demo["val"].num_images >= 1000 and demo["train"].image_size == 256
    tiny = preset_specs("tiny", seed=2, train_images=5, image_size=64)
    assert (tiny["train"].num_images, tiny["val"].num_images, tiny["test"].num_images) == (5, 16, 16)
    assert tiny["val"].seed == 2 and tiny["val"].image_size == 64 and tiny["test"].image_size == 64
    assert preset_specs("quick", val_images=7)["test"].num_images == 7  # held-out splits: one size


# --------------------------------------------------------------------------- registration


def test_registered_split_loads_with_contiguous_ids(dataset):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"fashiondet_test_{uuid.uuid4().hex[:8]}"
    json_file, image_root = split_paths(dataset["val"]["out"], "val")
    register_fashiondet(name, json_file, image_root)
    try:
        dicts = DatasetCatalog.get(name)
        meta = MetadataCatalog.get(name)
        assert len(dicts) == 10
        cats = {a["category_id"] for d in dicts for a in d["annotations"]}
        assert cats <= set(range(10)) and len(cats) >= 5
        expected = sorted(a["category_id"] - 1 for a in dataset["val"]["json"]["annotations"])
        assert sorted(a["category_id"] for d in dicts for a in d["annotations"]) == expected
        assert Path(dicts[0]["file_name"]).is_file()
        assert meta.thing_classes == list(FASHION_MNIST_CLASSES)
        assert meta.evaluator_type == "coco" and meta.json_file == str(json_file)
        assert meta.image_root == str(image_root)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_missing_json_gives_a_clear_error(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"fashiondet_missing_{uuid.uuid4().hex[:8]}"
    missing = tmp_path / "annotations" / "instances_train.json"
    register_fashiondet(name, missing, tmp_path / "train", preset="quick")
    try:
        with pytest.raises(FileNotFoundError) as err:
            DatasetCatalog.get(name)
        message = str(err.value)
        assert str(missing) in message and "DICOD_DATASETS" in message
        assert "python tools/make_fashiondet.py --preset quick" in message
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_register_all_maps_presets_to_folders_and_is_idempotent(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = [f"{d}_{s}" for d in PRESET_DIRNAMES.values() for s in ("train", "val", "test")]
    assert "fashiondet_test" in names and "fashiondet_tiny_val" in names
    previous = {n: MetadataCatalog.get(n).get("json_file") for n in names if n in DatasetCatalog}
    for n in names:
        if n in DatasetCatalog:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
    try:
        assert sorted(register_all_fashiondet(tmp_path)) == sorted(names)
        assert register_all_fashiondet(tmp_path) == []
        expected = tmp_path / "fashiondet_quick" / "annotations" / "instances_val.json"
        assert MetadataCatalog.get("fashiondet_quick_val").json_file == str(expected)
        generate_split(tmp_path / "fashiondet_tiny", "train", SMALL)
        assert len(DatasetCatalog.get("fashiondet_tiny_train")) == SMALL.num_images
        assert "coco_2017_val" in DatasetCatalog  # detectron2's builtin COCO stays
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
        if previous:  # restore what was registered before (the default root)
            register_all_fashiondet(Path(next(iter(previous.values()))).parents[2])


def test_data_root_from_environment(monkeypatch):
    monkeypatch.delenv("DICOD_DATASETS", raising=False)
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    assert get_data_root() == Path("datasets")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/d2")
    assert get_data_root() == Path("/d2")
    monkeypatch.setenv("DICOD_DATASETS", "/dicod")
    assert get_data_root() == Path("/dicod")


# --------------------------------------------------------------------------- CLI


def test_cli_writes_the_preset_folder(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_fashiondet", REPO / "tools/make_fashiondet.py"
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = [
        "--preset",
        "tiny",
        "--root",
        str(tmp_path),
        "--seed",
        "1",
        "--train-images",
        "3",
        "--val-images",
        "2",
        "--image-size",
        "64",
    ]
    written = cli.main(argv)
    assert written["val"] == tmp_path / "fashiondet_tiny" / "annotations" / "instances_val.json"
    assert len(_load(written["test"])["images"]) == 2  # --val-images sizes the test split too
    assert len(_load(written["train"])["images"]) == 3
    assert _load(written["val"])["info"]["spec"]["image_size"] == 64
    assert "generated in" in capsys.readouterr().out
    cli.main(argv)
    assert capsys.readouterr().out.count("up to date") == 3


def test_cli_reports_a_bad_value_in_one_line(tmp_path, capsys):
    from dicod_d2.cli import report_user_errors

    spec = importlib.util.spec_from_file_location(
        "make_fashiondet", REPO / "tools/make_fashiondet.py"
    )
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = ["--preset", "tiny", "--root", str(tmp_path), "--image-size", "16"]
    assert report_user_errors(lambda: cli.main(argv)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: invalid FashionDetSpec: image_size=16 must be >= 32"
    )
    assert not (tmp_path / "fashiondet_tiny").exists()

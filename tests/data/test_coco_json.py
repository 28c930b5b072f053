"""A user's own COCO json: detectron2's standard registration, --register-coco, image checks."""
import json
import uuid

import pytest
from _helpers import copy_as_own_coco
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from PIL import Image

from dicod_d2.data.coco_json import check_registered, register_coco_json
from dicod_d2.data.datasets import thing_classes
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
from dicod_d2.errors import DataError


@pytest.fixture
def own(tiny_fashiondet, tmp_path):
    return copy_as_own_coco(tiny_fashiondet, tmp_path / "mydata")


def _name() -> str:
    return f"own_{uuid.uuid4().hex[:8]}"


def test_thing_classes_of_a_register_coco_instances_dataset(own):
    name = _name()
    register_coco_instances(name, {}, str(own["train"]), str(own["images"]))
    assert MetadataCatalog.get(name).get("thing_classes", None) is None  # not loaded yet
    assert thing_classes(name) == list(FASHION_MNIST_CLASSES)  # the json's categories, by id


def test_thing_classes_of_an_unregistered_dataset_suggests_names():
    with pytest.raises(DataError, match="'fashiondet_tiny_trian' is not registered.*fashiondet_tiny_train"):
        thing_classes("fashiondet_tiny_trian")


def test_register_coco_json_loads_and_is_idempotent(own):
    name = _name()
    register_coco_json(name, own["val"], own["images"])
    register_coco_json(name, own["val"], own["images"])  # every launched process registers again
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == len(json.loads(own["val"].read_text())["images"])
    assert thing_classes(name) == list(FASHION_MNIST_CLASSES)
    assert MetadataCatalog.get(name).evaluator_type == "coco"
    check_registered([name, "fashiondet_tiny_val"])


def test_register_coco_json_bad_input(own, tmp_path):
    with pytest.raises(DataError, match="'fashiondet_tiny_train' is already registered"):
        register_coco_json("fashiondet_tiny_train", own["train"], own["images"])
    with pytest.raises(FileNotFoundError, match="annotation file .*nope.json"):
        register_coco_json(_name(), tmp_path / "nope.json", own["images"])
    with pytest.raises(FileNotFoundError, match="image folder .*no_images"):
        register_coco_json(_name(), own["train"], tmp_path / "no_images")


def test_missing_corrupt_and_resized_images_are_named_before_training(own):
    files = [json.loads(own["val"].read_text())["images"][i]["file_name"] for i in range(3)]
    (own["images"] / files[0]).unlink()
    (own["images"] / files[1]).write_bytes(b"not a jpeg")
    Image.new("RGB", (100, 80)).save(own["images"] / files[2])
    name = _name()
    register_coco_json(name, own["val"], own["images"])
    with pytest.raises(DataError) as info:
        DatasetCatalog.get(name)
    msg = str(info.value)
    assert f"dataset '{name}': 3 of 16 images cannot be used" in msg
    assert f"{files[0]}': missing" in msg
    assert f"{files[1]}': unreadable" in msg
    assert f"{files[2]}': the json says 256x256, the file is 100x80" in msg


def test_exif_rotated_image_is_checked_after_rotation(own):
    """detectron2 applies the EXIF orientation when it reads an image: a 90-degree tag swaps w/h."""
    coco = json.loads(own["val"].read_text())
    img = coco["images"][0]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    Image.new("RGB", (img["height"] // 2, img["width"])).save(own["images"] / img["file_name"], exif=exif)
    img["height"] //= 2  # the file is (h/2) x w on disk, w x (h/2) once rotated
    own["val"].write_text(json.dumps(coco))
    name = _name()
    register_coco_json(name, own["val"], own["images"])
    assert len(DatasetCatalog.get(name)) == len(coco["images"])

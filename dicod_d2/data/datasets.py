"""Registration of the FashionDet datasets with detectron2's ``DatasetCatalog`` / ``MetadataCatalog``.

Registered names (``register_all_fashiondet``), for the presets of ``dicod_d2.data.fashiondet``::

    fashiondet_{train,val,test}          -> <root>/fashiondet/        (preset "demo")
    fashiondet_quick_{train,val,test}    -> <root>/fashiondet_quick/  (preset "quick")
    fashiondet_tiny_{train,val,test}     -> <root>/fashiondet_tiny/   (preset "tiny")

Settings are chosen on ``*_val``; results are reported on ``*_test``.

COCO 2017 stays available through detectron2's own builtin registration.
"""

from __future__ import annotations

import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..errors import DataError
from .coco_json import check_registered
from .fashion_mnist import FASHION_MNIST_CLASSES
from .fashiondet import PRESET_DIRNAMES, SPLIT_SOURCES, split_paths


def get_data_root() -> Path:
    """The datasets root: ``$DICOD_DATASETS``, else ``$DETECTRON2_DATASETS``, else ``./datasets``."""
    root = os.environ.get("DICOD_DATASETS") or os.environ.get("DETECTRON2_DATASETS") or "datasets"
    return Path(root).expanduser()


def _loader(name: str, json_file: Path, image_root: Path, preset: str | None):
    def load() -> list[dict]:
        if not json_file.is_file():
            raise FileNotFoundError(
                f"FashionDet annotations '{json_file}' (dataset '{name}') not found. Generate them "
                f"with `python tools/make_fashiondet.py --preset {preset or '<tiny|quick|demo>'}` "
                "(add --root DIR for another datasets root), or set DICOD_DATASETS to the folder "
                "that holds them."
            )
        return load_coco_json(str(json_file), str(image_root), name)

    return load


def register_fashiondet(
    name: str,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    preset: str | None = None,
) -> None:
    """Register one FashionDet split (COCO json + image folder) under ``name``.

    Loading maps the json's category ids 1..10 to contiguous ids 0..9. Metadata: ``thing_classes``
    (the ten Fashion-MNIST names), ``json_file``, ``image_root``, ``evaluator_type="coco"``.
    ``preset`` only makes the missing-file error name the command that generates the split.
    """
    json_file, image_root = Path(json_file), Path(image_root)
    DatasetCatalog.register(name, _loader(name, json_file, image_root, preset))
    MetadataCatalog.get(name).set(
        thing_classes=list(FASHION_MNIST_CLASSES),
        json_file=str(json_file),
        image_root=str(image_root),
        evaluator_type="coco",
    )


def register_all_fashiondet(root: str | os.PathLike | None = None) -> list[str]:
    """Register the train, val and test splits of every preset under ``root`` (default :func:`get_data_root`).

    Idempotent: names already in the ``DatasetCatalog`` are skipped. Returns the names registered now.
    """
    root = Path(root) if root is not None else get_data_root()
    registered = []
    for preset, dirname in PRESET_DIRNAMES.items():
        for split in SPLIT_SOURCES:
            name = f"{dirname}_{split}"
            if name in DatasetCatalog.list():
                continue
            json_file, image_root = split_paths(root / dirname, split)
            register_fashiondet(name, json_file, image_root, preset)
            registered.append(name)
    return registered


def thing_classes(dataset_name: str | list[str] | tuple[str, ...]) -> list[str]:
    """The ``thing_classes`` of a registered detectron2 dataset (the first one of a list).

    A dataset registered the standard detectron2 way (``register_coco_instances``) has them only
    once its json is loaded: then the dataset is loaded first. Used by DICOD configs to check that
    the teacher's class names match the training data.

    Raises:
        DataError: the dataset is not registered, or has no ``thing_classes`` even once loaded.
    """
    name = dataset_name if isinstance(dataset_name, str) else list(dataset_name)[0]
    if MetadataCatalog.get(name).get("thing_classes", None) is None:
        check_registered(name)
        DatasetCatalog.get(name)  # detectron2's load_coco_json sets thing_classes
    classes = MetadataCatalog.get(name).get("thing_classes", None)
    if classes is None:
        raise DataError(
            f"dataset '{name}' has no thing_classes metadata, even once loaded: set "
            f"MetadataCatalog.get('{name}').thing_classes when registering it"
        )
    return list(classes)

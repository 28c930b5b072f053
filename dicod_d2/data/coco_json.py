"""One's own COCO-format dataset: registration from the command line, checks before training.

``register_coco_json(name, json_file, image_root)`` is detectron2's ``register_coco_instances``
(same loader, same metadata: ``json_file``, ``image_root``, ``evaluator_type="coco"``; loading
sets ``thing_classes`` from the json's categories sorted by id) with clear errors and an image
check: when the dataset is loaded, every image file is opened (header only) and a missing or
unreadable file, or a size that disagrees with the json's ``width``/``height``, stops the run with
one message naming the files, before any DataLoader worker reads them. Only headers are read: a
file cut after its header is skipped when it is decoded
(:class:`dicod_d2.data.dataset_mapper.SkipUnreadableImages`).
"""
from __future__ import annotations

import difflib
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError, one_line

logger = logging.getLogger(__name__)

#: EXIF orientations that rotate by 90 degrees (detectron2 applies them when it reads an image)
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112
#: how many bad files the error message lists
_LISTED = 5


def image_problem(file_name: str, width: int | None, height: int | None) -> str | None:
    """Why detectron2 could not use this image (missing, unreadable, other size), else None.

    Only the header is read. ``width``/``height`` are the json's, in pixels (None: not checked); the
    image's size is taken after its EXIF orientation, as detectron2's ``read_image`` does."""
    try:
        with Image.open(file_name) as im:
            w, h = im.size
            if im.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSING_ORIENTATIONS:
                w, h = h, w
    except FileNotFoundError:
        return "missing"
    except (UnidentifiedImageError, OSError) as e:
        return f"unreadable ({type(e).__name__}: {e})"
    if width is not None and height is not None and (w, h) != (width, height):
        return f"the json says {width}x{height}, the file is {w}x{h}"
    return None


def check_images(dataset_dicts: Iterable[dict], dataset_name: str) -> None:
    """Check every image of a loaded dataset with :func:`image_problem`.

    Raises:
        DataError: naming how many images are bad and the first ones, with the reason.
    """
    dataset_dicts = list(dataset_dicts)
    bad = [
        (d["file_name"], problem)
        for d in dataset_dicts
        if (problem := image_problem(d["file_name"], d.get("width"), d.get("height")))
    ]
    if bad:
        listed = "; ".join(f"'{f}': {p}" for f, p in bad[:_LISTED])
        more = f" (and {len(bad) - _LISTED} more)" if len(bad) > _LISTED else ""
        raise DataError(
            f"dataset '{dataset_name}': {len(bad)} of {len(dataset_dicts)} images cannot be used: "
            f"{listed}{more}. Fix the files or the json's images entries (file_name, width, height)."
        )


def json_problem(json_file: str) -> str:
    """Why detectron2's ``load_coco_json`` failed on ``json_file``: not JSON, not a COCO detection
    json (missing ``images`` / ``annotations`` / ``categories``), or annotations whose
    ``category_id`` is not among the categories; "" when none of these is the cause."""
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"is not a JSON file ({one_line(str(e))})"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        return "is not a COCO detection json: it needs the lists 'images', 'annotations' and 'categories'"
    known = {c.get("id") for c in data["categories"] if isinstance(c, dict)}
    unknown = sorted({str(a.get("category_id")) for a in data["annotations"]
                      if isinstance(a, dict) and a.get("category_id") not in known})
    if unknown:
        return (f"has annotations whose category_id ({', '.join(unknown[:_LISTED])}"
                f"{', ...' if len(unknown) > _LISTED else ''}) is not the id of an entry of its "
                f"'categories' (ids {sorted(known, key=str)[:10]})")
    return ""


def _checked_loader(name: str, json_file: str, image_root: str):
    def load() -> list[dict]:
        try:
            dicts = load_coco_json(json_file, image_root, name)
        except Exception as e:
            problem = json_problem(json_file)
            if not problem:
                raise  # not the json's content: a bug, with its traceback
            raise DataError(f"annotation file '{json_file}' of dataset '{name}' {problem}. Fix the file.") from e
        if not any(d.get("annotations") for d in dicts):
            raise DataError(
                f"annotation file '{json_file}' of dataset '{name}' has no annotations: nothing to "
                "train on or evaluate. Give a json with annotated objects."
            )
        check_images(dicts, name)
        return dicts

    return load


def register_coco_json(name: str, json_file: str | os.PathLike, image_root: str | os.PathLike) -> None:
    """Register a COCO-format detection json and its image folder under ``name``.

    Registering the same name with the same files again does nothing (every launched process
    registers the datasets of the command line).

    Loading the dataset raises :class:`DataError` naming the json when it is not JSON, not a COCO
    detection json, has annotations of unknown categories or none at all.

    Raises:
        FileNotFoundError: the json or the image folder does not exist.
        ConfigError: a value looks like a ``key=value`` override (fewer than three values given).
        DataError: ``name`` is already registered with other files (e.g. a built-in dataset).
    """
    json_file, image_root = str(Path(json_file)), str(Path(image_root))
    for value in (json_file, image_root):
        if "=" in value and not os.path.exists(value):
            raise ConfigError(
                f"--register-coco takes three values, NAME JSON IMAGE_DIR; '{value}' looks like a "
                "key=value override: give the dataset's name, json file and image folder before it"
            )
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"annotation file '{json_file}' of dataset '{name}' does not exist")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image folder '{image_root}' of dataset '{name}' does not exist")
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file", None), meta.get("image_root", None)) == (json_file, image_root):
            return
        raise DataError(
            f"dataset name '{name}' is already registered (to {meta.get('json_file', 'a loader')}): "
            "choose another name"
        )
    DatasetCatalog.register(name, _checked_loader(name, json_file, image_root))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco")
    logger.info("Registered dataset '%s': %s, images in %s", name, json_file, image_root)


def check_registered(names: str | Sequence[str]) -> None:
    """Raise :class:`DataError` naming the closest registered names if a dataset is not registered."""
    registered = DatasetCatalog.list()
    for name in [names] if isinstance(names, str) else names:
        if name not in registered:
            close = difflib.get_close_matches(name, registered, n=3, cutoff=0.6)
            hint = f"Did you mean {' or '.join(close)}? " if close else ""
            raise DataError(
                f"dataset '{name}' is not registered. {hint}Register your own COCO json with "
                "--register-coco NAME JSON IMAGE_DIR."
            )

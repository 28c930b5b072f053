"""FashionDet: a deterministic COCO-format detection dataset built from real objects and photos.

Each image is a square background (a crop of one of scikit-image's public-domain photos, or a
procedural texture: smooth colour noise, stripes, gradients) with 1..8 Fashion-MNIST items pasted
on it at varied positions, sizes (COCO small, medium and large), colour tints and textures. An item
is pasted with an alpha mask derived from its intensity, so the background shows around the
garment; later items may partly cover earlier ones, but every item keeps at least
``min_visible`` of its pixels visible. The ground-truth box is the tight box of the item's visible
mask (``alpha >= 0.5``). The ten classes are Fashion-MNIST's, several of them confusable by design
(T-shirt / shirt / pullover / coat). Train images use items of Fashion-MNIST's train split; val and
test images (two splits of one size, each with its own random stream) items of its test split, so no
object is shared between training and the held-out splits.

Layout of one split written by :func:`generate_split`::

    <out_dir>/<split>/000001.jpg ...                 (JPEG, fixed quality)
    <out_dir>/annotations/instances_<split>.json     (COCO; "info" holds the spec and provenance)

Boxes are ``[x, y, w, h]`` in pixels, pixel-edge convention (a box covering pixel columns 3..5
has ``x = 3, w = 3``); ``area`` is the box area ``w * h`` in pixels² and ``segmentation`` the box
as a polygon, so tools that need a segmentation (TIDE) work. Each annotation also records
``source_index`` (the item's index in its Fashion-MNIST split) and ``visible_fraction``.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from ..utils.io import atomic_write_text
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

GENERATOR_VERSION = 1
"""Bumped whenever the rendering changes, so existing splits are regenerated."""

SPLIT_SOURCES: dict[str, str] = {"train": "train", "val": "test", "test": "test"}
"""FashionDet split -> Fashion-MNIST split its items come from.

``val`` is where settings are chosen, ``test`` (same size, its own random stream) where results are
reported: both draw their garments from Fashion-MNIST's test items, never from the training items."""

PHOTO_NAMES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "coins", "camera", "brick", "grass", "gravel",
    "hubble_deep_field", "retina", "immunohistochemistry", "moon", "clock", "cell",
)  # fmt: skip
"""``skimage.data`` photos used as backgrounds; all ship in scikit-image's wheel (no download)."""

PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"train": 48, "val": 16, "test": 16},
    "quick": {"train": 400, "val": 200, "test": 200},
    "demo": {"train": 2500, "val": 1000, "test": 1000},
}
"""Preset name -> number of images per split (``test`` has the size of ``val``)."""

PRESET_DIRNAMES: dict[str, str] = {
    "tiny": "fashiondet_tiny",
    "quick": "fashiondet_quick",
    "demo": "fashiondet",
}
"""Preset name -> folder under the datasets root (see ``dicod_d2.data.datasets``)."""

_ALPHA_LOW, _ALPHA_RAMP = 8.0, 50.0  # alpha = clip((intensity - 8) / 50, 0, 1); 0.5 at intensity 33
_MASK_THRESHOLD = _ALPHA_LOW + 0.5 * _ALPHA_RAMP
_MIN_PIXELS = 6  # smallest accepted visible mask, in pixels
_PLACEMENT_TRIES = 12
_SHRINK_ON_FAILURE = 0.92  # an object that finds no place is retried a little smaller


@dataclasses.dataclass(frozen=True)
class FashionDetSpec:
    """Everything that determines one generated split (stored in the json's ``info["spec"]``).

    Attributes:
        num_images: number of images.
        image_size: side of the square images, pixels.
        min_objects, max_objects: objects per image drawn uniformly in this range (an object that
            finds no place after a few tries is dropped; the first one always fits).
        seed: random seed; the same spec gives byte-identical files.
        min_object_size: smallest object size, pixels; an object's size is ``sqrt(w * h)`` of its
            unoccluded box, drawn log-uniformly in ``[min_object_size, max_object_frac * image_size]``.
        max_object_frac: largest object size as a fraction of ``image_size``.
        min_visible: fraction of an object's mask pixels that must stay visible under later objects.
        photo_prob: probability that the background is a photo (else a procedural texture).
        jpeg_quality: JPEG quality of the written images.
    """

    num_images: int
    image_size: int = 256
    min_objects: int = 1
    max_objects: int = 8
    seed: int = 0
    min_object_size: float = 12.0
    max_object_frac: float = 0.75
    min_visible: float = 0.7
    photo_prob: float = 0.5
    jpeg_quality: int = 90

    def __post_init__(self):
        problems = []
        if self.num_images < 1:
            problems.append(f"num_images={self.num_images} must be >= 1")
        if self.image_size < 32:
            problems.append(f"image_size={self.image_size} must be >= 32")
        if not 1 <= self.min_objects <= self.max_objects:
            problems.append(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if not 4 <= self.min_object_size <= self.max_object_frac * self.image_size:
            problems.append(
                f"need 4 <= min_object_size ({self.min_object_size}) <= max_object_frac * "
                f"image_size ({self.max_object_frac * self.image_size:g})"
            )
        if not 0 < self.max_object_frac <= 1:
            problems.append(f"max_object_frac={self.max_object_frac} must be in (0, 1]")
        if not 0 < self.min_visible <= 1:
            problems.append(f"min_visible={self.min_visible} must be in (0, 1]")
        if not 0 <= self.photo_prob <= 1:
            problems.append(f"photo_prob={self.photo_prob} must be in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality={self.jpeg_quality} must be in [1, 100]")
        if problems:
            raise ConfigError("invalid FashionDetSpec: " + "; ".join(problems))


def preset_specs(
    preset: str,
    seed: int = 0,
    train_images: int | None = None,
    val_images: int | None = None,
    **overrides,
) -> dict[str, FashionDetSpec]:
    """The ``{"train": spec, "val": spec, "test": spec}`` of a preset (``tiny``, ``quick``, ``demo``).

    ``train_images`` / ``val_images`` replace the preset's image counts (``val_images`` sets the
    test split's count too: the two held-out splits have one size); ``overrides`` are other
    :class:`FashionDetSpec` fields applied to every split (for example ``image_size=128``).
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown FashionDet preset '{preset}'; choose one of {sorted(PRESETS)}.")
    counts = dict(PRESETS[preset])
    counts["train"] = train_images or counts["train"]
    counts["val"] = counts["test"] = val_images or counts["val"]
    return {
        split: FashionDetSpec(num_images=n, seed=seed, **overrides) for split, n in counts.items()
    }


# ---------------------------------------------------------------------------------------------
# rendering


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[Image.Image, ...]:
    """The background photos as RGB PIL images (greyscale ones converted), loaded once."""
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        arr = getattr(skimage.data, name)()
        photos.append(Image.fromarray(arr).convert("RGB"))
    return tuple(photos)


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)``, each float32 ``[size, size]``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return yy, xx


def _random_colour(rng: np.random.Generator, s_range, v_range) -> np.ndarray:
    """A random RGB colour, float32 ``[3]`` in 0..255, from uniform hue and the given S/V ranges."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s_range), rng.uniform(*v_range))
    return np.array(rgb, dtype=np.float32) * 255.0


def _photo_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of a random photo, resized, maybe flipped and tinted: float32 ``[size, size, 3]``."""
    photos = _photos()
    photo = photos[rng.integers(len(photos))]
    w, h = photo.size
    side = int(rng.uniform(0.35, 1.0) * min(w, h))
    x, y = int(rng.integers(w - side + 1)), int(rng.integers(h - side + 1))
    img = np.asarray(
        photo.resize((size, size), Image.BILINEAR, box=(x, y, x + side, y + side)), np.float32
    )
    if rng.random() < 0.5:
        img = img[:, ::-1]
    tint = _random_colour(rng, (0.0, 0.5), (0.7, 1.0)) / 255.0
    return img * tint


def _texture_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A procedural texture (smooth colour noise, stripes or a gradient) with grain: float32 ``[size, size, 3]``."""
    kind = rng.integers(3)
    if kind == 0:  # smooth colour noise
        k = int(rng.integers(2, 17))
        cells = rng.integers(0, 256, (k, k, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(cells).resize((size, size), Image.BICUBIC), np.float32)
    else:
        yy, xx = _grid(size)
        theta = rng.uniform(0, np.pi)
        proj = xx * np.cos(theta) + yy * np.sin(theta)
        if kind == 1:  # stripes, sinusoidal or square
            period = rng.uniform(6, size / 3)
            t = 0.5 + 0.5 * np.sin(proj * (2 * np.pi / period) + rng.uniform(0, 2 * np.pi))
            if rng.random() < 0.5:
                t = (t > 0.5).astype(np.float32)
        else:  # linear gradient
            t = (proj - proj.min()) / max(float(np.ptp(proj)), 1e-6)
        c0 = _random_colour(rng, (0.0, 1.0), (0.2, 1.0))
        c1 = _random_colour(rng, (0.0, 1.0), (0.2, 1.0))
        img = c0 + t[..., None] * (c1 - c0)
    grain = rng.uniform(0.0, 12.0)
    return img + grain * rng.standard_normal((size, size, 1), dtype=np.float32)


def _object_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A multiplicative brightness pattern for one object (plain, stripes, checks or speckle): float32 ``[h, w]``."""
    kind = rng.integers(4)
    if kind == 0:
        return np.ones((h, w), np.float32)
    if kind == 3:
        return rng.uniform(0.7, 1.0, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(3.0, max(4.0, min(h, w) / 3))
    if kind == 1:
        theta = rng.uniform(0, np.pi)
        on = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period)) > 0
    else:
        on = (np.floor(xx / period) + np.floor(yy / period)) % 2 == 0
    return np.where(on, 1.0, 0.7).astype(np.float32)


@dataclasses.dataclass
class _Placed:
    """One pasted object: its top-left corner, soft alpha and binary mask (``[h, w]``), source item."""

    y: int
    x: int
    alpha: np.ndarray
    mask: np.ndarray
    intensity: np.ndarray
    label: int
    source_index: int


def _tight_crop(item: np.ndarray) -> np.ndarray:
    """The item cropped to the box of its mask pixels (``uint8[h, w]``, whole item if it has none)."""
    mask = item >= _MASK_THRESHOLD
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return item
    return item[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _try_place(
    rng: np.random.Generator,
    spec: FashionDetSpec,
    crop: np.ndarray,
    owner: np.ndarray,
    visible: np.ndarray,
    full: np.ndarray,
) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Size and position one item so that earlier objects keep ``min_visible`` of their pixels.

    The size is drawn once (log-uniform, see :class:`FashionDetSpec`), then each failed try
    draws a new position at a slightly smaller size.

    ``owner`` (int16 ``[S, S]``, -1 = background) is the index of the topmost object per pixel;
    ``visible``/``full`` (int64 ``[n]``) are the earlier objects' visible and full pixel counts.
    Returns ``(y, x, intensity float32[h, w], alpha float32[h, w])`` or None if no place was found.
    """
    size = spec.image_size
    lo, hi = np.log(spec.min_object_size), np.log(spec.max_object_frac * size)
    h0, w0 = crop.shape
    scale = min(np.exp(rng.uniform(lo, hi)) / np.sqrt(h0 * w0), size / h0, size / w0)
    for _ in range(_PLACEMENT_TRIES):
        h, w = max(2, round(h0 * scale)), max(2, round(w0 * scale))
        scale *= _SHRINK_ON_FAILURE
        intensity = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR), np.float32)
        alpha = np.clip((intensity - _ALPHA_LOW) / _ALPHA_RAMP, 0.0, 1.0)
        mask = alpha >= 0.5
        if mask.sum() < _MIN_PIXELS:
            continue
        y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
        covered = owner[y : y + h, x : x + w][mask]
        lost = np.bincount(covered[covered >= 0], minlength=len(full))
        if np.all(visible - lost >= spec.min_visible * full):
            return y, x, intensity, alpha
    return None


def _layout(
    rng: np.random.Generator,
    spec: FashionDetSpec,
    items: np.ndarray,
    by_class: list[np.ndarray],
    deck: list[int],
) -> tuple[list[_Placed], np.ndarray]:
    """Choose, size and place the objects of one image.

    ``deck`` holds the classes still to be drawn in the current shuffled round of all ten (so the
    split stays class-balanced); it is refilled and consumed in place.
    Returns the placed objects (bottom to top) and the final owner map (int16 ``[S, S]``).
    """
    size = spec.image_size
    owner = np.full((size, size), -1, np.int16)
    placed: list[_Placed] = []
    visible = np.zeros(0, np.int64)
    full = np.zeros(0, np.int64)
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        if not deck:
            deck.extend(rng.permutation(len(FASHION_MNIST_CLASSES)).tolist())
        label = deck.pop()
        pool = by_class[label]
        source_index = int(pool[rng.integers(len(pool))])
        found = _try_place(rng, spec, _tight_crop(items[source_index]), owner, visible, full)
        if found is None:
            deck.append(label)  # draw this class again next, keeping the balance
            continue
        y, x, intensity, alpha = found
        mask = alpha >= 0.5
        region = owner[y : y + intensity.shape[0], x : x + intensity.shape[1]]
        covered = region[mask]
        visible = visible - np.bincount(covered[covered >= 0], minlength=len(full))
        region[mask] = len(placed)
        n_pix = int(mask.sum())
        visible, full = np.append(visible, n_pix), np.append(full, n_pix)
        placed.append(_Placed(y, x, alpha, mask, intensity, label, source_index))
    return placed, owner


def _render(rng: np.random.Generator, spec: FashionDetSpec, placed: list[_Placed]) -> np.ndarray:
    """Draw the background and alpha-composite the tinted, textured objects: uint8 ``[S, S, 3]``."""
    size = spec.image_size
    if rng.random() < spec.photo_prob:
        canvas = _photo_background(rng, size)
    else:
        canvas = _texture_background(rng, size)
    canvas = np.ascontiguousarray(canvas, dtype=np.float32)
    for obj in placed:
        h, w = obj.intensity.shape
        colour = _random_colour(rng, (0.2, 1.0), (0.55, 1.0))
        shade = (0.3 + 0.7 * obj.intensity / 255.0) * _object_texture(rng, h, w)
        rgb = shade[..., None] * colour
        a = obj.alpha[..., None]
        region = canvas[obj.y : obj.y + h, obj.x : obj.x + w]
        region += a * (rgb - region)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def _annotations(
    placed: list[_Placed], owner: np.ndarray, image_id: int, first_id: int
) -> list[dict]:
    """COCO annotations (tight boxes of the visible masks) of one image's objects."""
    anns = []
    for k, obj in enumerate(placed):
        h, w = obj.mask.shape
        vis = owner[obj.y : obj.y + h, obj.x : obj.x + w] == k
        rows, cols = np.flatnonzero(vis.any(1)), np.flatnonzero(vis.any(0))
        x0, y0 = float(obj.x + cols[0]), float(obj.y + rows[0])
        x1, y1 = float(obj.x + cols[-1] + 1), float(obj.y + rows[-1] + 1)
        anns.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": obj.label + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                "source_index": obj.source_index,
                "visible_fraction": round(float(vis.sum()) / float(obj.mask.sum()), 4),
            }
        )
    return anns


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """Write ``uint8[H, W, 3]`` RGB as a baseline JPEG (deterministic for a given Pillow)."""
    Image.fromarray(image).save(path, format="JPEG", quality=quality)


# ---------------------------------------------------------------------------------------------
# splits on disk


def split_paths(out_dir: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """``(json_file, image_root)`` of a split under ``out_dir``."""
    out_dir = Path(out_dir)
    return out_dir / "annotations" / f"instances_{split}.json", out_dir / split


def _info(split: str, spec: FashionDetSpec) -> dict:
    return {
        "description": "FashionDet: Fashion-MNIST items pasted on photos and textures (dicod_d2)",
        "generator_version": GENERATOR_VERSION,
        "split": split,
        "source_dataset": "Fashion-MNIST (Zalando Research, MIT licence)",
        "source_split": SPLIT_SOURCES[split],
        "background_photos": "skimage.data (public domain / CC0): " + ", ".join(PHOTO_NAMES),
        "spec": dataclasses.asdict(spec),
    }


def split_is_current(out_dir: str | os.PathLike, split: str, spec: FashionDetSpec) -> bool:
    """Whether ``out_dir`` already holds this split generated from exactly ``spec`` (and this version)."""
    json_file, image_root = split_paths(out_dir, split)
    if not json_file.is_file() or not image_root.is_dir():
        return False
    try:
        info = json.loads(json_file.read_text(encoding="utf-8")).get("info", {})
    except (OSError, ValueError):
        return False
    if info != _info(split, spec):
        return False
    return sum(1 for _ in image_root.glob("*.jpg")) == spec.num_images


def generate_split(out_dir: str | os.PathLike, split: str, spec: FashionDetSpec) -> Path:
    """Generate one split (``"train"``, ``"val"`` or ``"test"``) under ``out_dir``; return its json path.

    A no-op when the split already exists with the same spec. Otherwise the images are written
    into a temporary folder that replaces ``<out_dir>/<split>`` only once all are written, then
    the json is written atomically; a failure leaves no partial folder or json behind (an older
    complete split, if any, is kept until the new one is complete).
    """
    if split not in SPLIT_SOURCES:
        raise ValueError(f"unknown FashionDet split '{split}'; use one of {sorted(SPLIT_SOURCES)}.")
    json_file, image_root = split_paths(out_dir, split)
    if split_is_current(out_dir, split, spec):
        return json_file

    items, labels = load_fashion_mnist(SPLIT_SOURCES[split])
    by_class = [np.flatnonzero(labels == c) for c in range(len(FASHION_MNIST_CLASSES))]
    rng = np.random.default_rng([spec.seed, list(SPLIT_SOURCES).index(split)])

    image_root.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=image_root.parent))
    try:
        images, annotations, deck = [], [], []
        for image_id in range(1, spec.num_images + 1):
            placed, owner = _layout(rng, spec, items, by_class, deck)
            file_name = f"{image_id:06d}.jpg"
            _write_jpeg(tmp_dir / file_name, _render(rng, spec, placed), spec.jpeg_quality)
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": spec.image_size,
                    "height": spec.image_size,
                }
            )
            annotations += _annotations(placed, owner, image_id, len(annotations) + 1)
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(FASHION_MNIST_CLASSES)]
        text = json.dumps(
            {
                "info": _info(split, spec),
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
        )

        json_file.unlink(missing_ok=True)  # never leave a json describing other images
        if image_root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{split}.old.", dir=image_root.parent))
            os.replace(image_root, old / split)
            shutil.rmtree(old)
        os.replace(tmp_dir, image_root)
        atomic_write_text(json_file, text)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
    return json_file


SPLIT_SHA256: dict[str, dict[str, str]] = {
    "tiny": {
        "train": "86a10f70b0fd0e8e25c9bf1322ba77d0e985d8a4e4acfd4897cce2b255f24676",
        "val": "ba56eb8a1b74df6d8684fe31b89d5bbb56aac3a32c5c39607143e82efb197868",
        "test": "ac4740462d8da6b8a7d264557a4d3a601747bbc2030f839638e0a94d7d516ca1",
    },
    "demo": {
        "train": "f512d18d66e837796b96e66896daa02c68b17b478896f04cbe83627bf31580d2",
        "val": "566ae7ae2598518df9fab5f8695e173f73c98427019a51589e8d1187ee833fde",
        "test": "c47e2714adf96278bc5d910e55aee532c3aa50c8b5d5ebd0adf4abeddd397871",
    },
}
"""Preset -> split -> :func:`split_sha256` of the split generated with the preset's settings and
seed 0 by this generator version with the locked packages (``requirements.lock``): the same bytes
on every machine. A generator change that alters them updates these digests with
``GENERATOR_VERSION``."""


class DataDigestError(DataError):
    """A generated FashionDet split whose bytes are not the reference ones."""


def split_sha256(out_dir: str | os.PathLike, split: str) -> str:
    """sha256 (hex) of a split's bytes: its annotations json, then its ``*.jpg`` images in file-name
    order, each fed as ``<name>\\0<size>\\0<bytes>`` so that names and boundaries count too."""
    json_file, image_root = split_paths(out_dir, split)
    digest = hashlib.sha256()
    for path in [json_file, *sorted(image_root.glob("*.jpg"))]:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def verify_fashiondet(out_dir: str | os.PathLike, preset: str) -> dict[str, str]:
    """Check the splits of ``preset`` (generated with seed 0) in ``out_dir`` against
    :data:`SPLIT_SHA256`; returns ``{split: sha256}``.

    Raises:
        DataDigestError: a split's bytes differ (names the split's json and image folder).
    """
    if preset not in SPLIT_SHA256:
        raise ConfigError(f"no reference digests for FashionDet preset '{preset}'; "
                          f"choose one of {sorted(SPLIT_SHA256)}.")
    found = {}
    for split, expected in SPLIT_SHA256[preset].items():
        found[split] = split_sha256(out_dir, split)
        if found[split] != expected:
            json_file, image_root = split_paths(out_dir, split)
            raise DataDigestError(
                f"FashionDet {preset} split '{split}' ({json_file}, {image_root}/*.jpg) has sha256 "
                f"{found[split]}, not the reference {expected}: install the locked environment "
                f"(make setup), delete '{out_dir}' and generate it again (tools/make_fashiondet.py --preset {preset})."
            )
    return found


def generate_fashiondet(
    out_dir: str | os.PathLike,
    specs: str | Mapping[str, FashionDetSpec] = "tiny",
    seed: int | None = None,
) -> dict[str, Path]:
    """Generate every split of a preset name (train, val, test) or of a ``{split: spec}`` dict.

    ``seed`` (if given) replaces the specs' seeds. ``out_dir`` is the dataset folder itself (the
    registered datasets expect ``<datasets root>/<PRESET_DIRNAMES[preset]>``).
    Returns ``{split: json_path}``.
    """
    if isinstance(specs, str):
        specs = preset_specs(specs, seed=seed or 0)
    elif seed is not None:
        specs = {split: dataclasses.replace(s, seed=seed) for split, s in specs.items()}
    return {split: generate_split(out_dir, split, spec) for split, spec in specs.items()}

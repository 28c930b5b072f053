"""Teacher files: a classifier's weights plus everything needed to use it (classes, input format).

A teacher file is a ``torch.save``'d dict (readable with ``weights_only=True``)::

    {"format": "dicod_d2.teacher", "meta": TeacherMeta as a dict, "state_dict": {key: tensor}}

with the state dict in the original implementation's key format (see ``classifiers.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..errors import ConfigError, UserError
from ..utils.io import atomic_torch_save
from .classifiers import (
    CLASSIFIERS,
    IMAGENET_PIXEL_MEAN,
    IMAGENET_PIXEL_STD,
    TeacherClassifier,
    WeightsMismatchError,
    build_classifier,
    check_state_dict,
    guess_arch,
)

FORMAT_NAME = "dicod_d2.teacher"
FORMAT_VERSION = 1


class TeacherFileError(UserError, ValueError):
    """A teacher file that cannot be used: corrupt, not a teacher file, or weights that do not fit."""


@dataclass
class TeacherMeta:
    """How to use a teacher's weights.

    Attributes:
        arch: name in ``classifiers.CLASSIFIERS``.
        num_classes: C, the number of logits.
        class_names: the C class names, in logit order.
        input_size: s, the side of the square crops it was trained on (px).
        channel_order: "RGB" or "BGR": the channel order the classifier expects.
        pixel_mean, pixel_std: per-channel normalisation on the 0–255 scale, in ``channel_order``;
            the classifier input is ``(x - pixel_mean) / pixel_std``.
        recipe: free-form description of how it was trained (augmentation, loss, dataset, top1...);
            only str/int/float/bool/None and lists/dicts of them.
        format_version: version of the teacher-file format.
    """

    arch: str
    num_classes: int
    class_names: list[str]
    input_size: int
    channel_order: str
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    recipe: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        self.class_names = [str(n) for n in self.class_names]
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)
        problems = []
        if self.arch not in CLASSIFIERS:
            problems.append(f"unknown arch '{self.arch}' (known: {sorted(CLASSIFIERS)})")
        if len(self.class_names) != self.num_classes:
            problems.append(
                f"{len(self.class_names)} class names for num_classes={self.num_classes}"
            )
        if not isinstance(self.input_size, int) or self.input_size < 1:
            problems.append(f"input_size must be a positive int, got {self.input_size!r}")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3:
            problems.append("pixel_mean and pixel_std need 3 values each")
        elif min(self.pixel_std) <= 0:
            problems.append(f"pixel_std must be positive, got {self.pixel_std}")
        if not _is_plain(self.recipe) or not isinstance(self.recipe, dict):
            problems.append("recipe must be a dict of str/int/float/bool/None, lists and dicts")
        if problems:
            # from a teacher-training config; read from a file it becomes a TeacherFileError
            raise ConfigError("invalid teacher meta: " + "; ".join(problems))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TeacherMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown teacher meta fields {unknown}")
        return cls(**d)


def _is_plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_teacher_file(path: str | os.PathLike, model: TeacherClassifier, meta: TeacherMeta) -> None:
    """Write ``model``'s weights (on CPU) and ``meta`` to ``path`` atomically."""
    if model.arch != meta.arch or model.num_classes != meta.num_classes:
        raise ValueError(
            f"meta says arch '{meta.arch}' with {meta.num_classes} classes but the model is "
            f"'{model.arch}' with {model.num_classes} classes"
        )
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(
        {"format": FORMAT_NAME, "meta": meta.to_dict(), "state_dict": state_dict}, path
    )


def is_teacher_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable teacher file (the tensors are memory-mapped, not read)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # missing, not a zip-format torch file, not weights-only: not a teacher file
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT_NAME


def write_random_teacher(
    path: str | os.PathLike,
    class_names: Sequence[str],
    arch: str = "resnet_tiny",
    input_size: int = 56,
    seed: int = 0,
) -> str:
    """Write a teacher file of random weights (``torch.manual_seed(seed)``; the global RNG is left
    as it was) for ``class_names``: RGB crops of ``input_size`` px, ImageNet normalisation. It runs
    at the speed of a trained teacher of the same ``arch``, for tests and timing. Returns str(path).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_classifier(arch, len(class_names))
    meta = TeacherMeta(
        arch=arch, num_classes=len(class_names), class_names=list(class_names),
        input_size=input_size, channel_order="RGB", pixel_mean=IMAGENET_PIXEL_MEAN,
        pixel_std=IMAGENET_PIXEL_STD, recipe={"note": "random weights, for tests and timing only"},
    )
    save_teacher_file(path, model, meta)
    return str(path)


def read_teacher_file(path: str | os.PathLike) -> tuple[TeacherClassifier, TeacherMeta, str]:
    """Like :func:`load_teacher_file`, also returning the SHA-256 of exactly the bytes loaded."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"teacher file '{path}' does not exist; train one with the teacher-training tool or "
            "point the config to an existing file"
        )
    with open(path, "rb") as f:
        data = f.read()
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, pickled objects, ...
        raise TeacherFileError(
            f"teacher file '{path}' cannot be read: it is truncated, corrupt or not a torch file "
            f"({type(e).__name__}: {e}). Re-create or re-copy it."
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        hint = ""
        if (
            isinstance(payload, dict)
            and payload
            and all(isinstance(v, torch.Tensor) for v in payload.values())
        ):
            hint = (
                " It looks like a plain state dict: use it as init_weights to train a teacher, "
                "or wrap it with save_teacher_file(path, model, meta)."
            )
        raise TeacherFileError(
            f"'{path}' is not a dicod_d2 teacher file (no format '{FORMAT_NAME}').{hint}"
        )
    try:
        meta = TeacherMeta.from_dict(payload["meta"])
    except (KeyError, TypeError, ValueError) as e:
        raise TeacherFileError(f"teacher file '{path}' has invalid meta data: {e}") from e
    if meta.format_version > FORMAT_VERSION:
        raise TeacherFileError(
            f"teacher file '{path}' has format version {meta.format_version}; this dicod_d2 reads "
            f"up to {FORMAT_VERSION}: update dicod_d2"
        )
    state_dict = payload.get("state_dict")
    if not isinstance(state_dict, dict):
        raise TeacherFileError(f"teacher file '{path}' holds no state dict")
    model = build_classifier(meta.arch, meta.num_classes)
    try:
        check_state_dict(model, state_dict, source=f"teacher file '{path}'")
    except WeightsMismatchError as e:
        guess = guess_arch(state_dict)
        if guess == meta.arch:
            looks = "its weights have another number of classes"
        else:
            looks = (
                f"its keys look like arch '{guess}'" if guess else "its keys match no known arch"
            )
        raise TeacherFileError(
            f"teacher file '{path}' declares arch '{meta.arch}' but {looks}. {e}"
        ) from e
    model.load_state_dict(state_dict, strict=True)
    return model, meta, sha256


def load_teacher_file(path: str | os.PathLike) -> tuple[TeacherClassifier, TeacherMeta]:
    """Build the classifier a teacher file declares and load its weights (strict keys and shapes).

    Raises FileNotFoundError (missing file) or :class:`TeacherFileError` (truncated/corrupt file,
    not a teacher file, newer format, weights that do not fit the declared arch)."""
    model, meta, _ = read_teacher_file(path)
    return model, meta

"""The frozen classification teacher used during distillation.

:class:`FrozenTeacher` is a plain Python object, not an ``nn.Module``: assigned as an attribute of a
student it is not registered as a submodule, so it has no ``state_dict`` keys in the student's
checkpoint, no parameters in its optimizer, nothing for DDP to synchronise, is never matched by
detectron2's checkpoint loading, and ``student.train()`` (e.g. detectron2's ``inference_context``
after every evaluation) never reaches it. A student forwards device/dtype moves to it by calling
``teacher._apply(fn)`` from its own ``_apply``.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .classifiers import TeacherClassifier
from .teacher_file import TeacherFileError, TeacherMeta, read_teacher_file

logger = logging.getLogger(__name__)

#: accepted ``amp_dtype`` values of :class:`FrozenTeacher`
_AMP_DTYPES = {None: None, "float16": torch.float16, "bfloat16": torch.bfloat16}


class FrozenTeacher:
    """A classifier in eval mode with no trainable parameter, plus its :class:`TeacherMeta`.

    Attributes:
        model: the classifier; always in eval mode, every parameter has ``requires_grad=False``.
        meta: classes, input size, channel order and normalisation of the classifier.
        path, sha256: the teacher file it came from and the SHA-256 of its bytes (None if built
            from a model in memory).
        channels_last: keep the weights and run the inputs in ``torch.channels_last`` memory
            format (faster convolutions on GPUs with tensor cores; same values up to float
            rounding). Off by default.
        amp_dtype: None (default: float32, the exact values) or "float16" / "bfloat16": run the
            teacher under ``torch.autocast`` with that dtype; outputs are cast back to the input's
            dtype. Changes the values by the autocast rounding; meant for GPUs.
        derange_classes: the wrong-knowledge control: :meth:`logits` returns, as the score of
            class i, the teacher's score of class (i - 1) mod C, a fixed derangement (no class keeps
            its own score; the confidence profile of every crop is kept). Features are unchanged.
            Off by default.
    """

    def __init__(
        self,
        model: TeacherClassifier,
        meta: TeacherMeta,
        path: str | None = None,
        sha256: str | None = None,
        *,
        channels_last: bool = False,
        amp_dtype: str | None = None,
        derange_classes: bool = False,
    ):
        if model.arch != meta.arch or model.num_classes != meta.num_classes:
            raise ValueError(
                f"meta says arch '{meta.arch}' with {meta.num_classes} classes but the model is "
                f"'{model.arch}' with {model.num_classes} classes"
            )
        if amp_dtype not in _AMP_DTYPES:
            raise ConfigError(f"amp_dtype must be one of {list(_AMP_DTYPES)}, got {amp_dtype!r}.")
        self.model = model.eval().requires_grad_(False)
        self.meta = meta
        self.path = path
        self.sha256 = sha256
        self.channels_last = bool(channels_last)
        self.amp_dtype = amp_dtype
        if derange_classes and meta.num_classes < 2:
            raise ConfigError("derange_classes needs a teacher with at least 2 classes.")
        self.derange_classes = bool(derange_classes)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_file(cls, path: str, **options) -> FrozenTeacher:
        """Load a teacher file (see ``teacher_file.py``) and log its path and SHA-256.

        ``options``: ``channels_last`` / ``amp_dtype`` / ``derange_classes`` of the constructor."""
        model, meta, sha256 = read_teacher_file(path)
        top1 = meta.recipe.get("top1")
        logger.info(
            "Teacher %s (sha256 %s): %s, %d classes, %d px %s input%s",
            path,
            sha256,
            meta.arch,
            meta.num_classes,
            meta.input_size,
            meta.channel_order,
            f", top-1 {top1}" if top1 is not None else "",
        )
        return cls(model, meta, path=str(path), sha256=sha256, **options)

    # ----------------------------------------------------------------------------- device, mode
    def _apply(self, fn: Callable[[Tensor], Tensor]) -> FrozenTeacher:
        """Apply ``fn`` to every parameter and buffer (what ``nn.Module._apply`` does)."""
        self.model._apply(fn)
        return self

    def to(self, *args, **kwargs) -> FrozenTeacher:
        """Move/cast like ``nn.Module.to`` (device and/or floating dtype)."""
        self.model.to(*args, **kwargs)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def train(self, mode: bool = True) -> FrozenTeacher:
        """No-op that keeps eval mode: the teacher's BatchNorm statistics and dropout must stay
        fixed during distillation, whatever mode the student or a training loop asks for."""
        self.model.eval()
        return self

    def eval(self) -> FrozenTeacher:
        return self.train(False)

    # ------------------------------------------------------------------------------- compute
    def _run(self, fn: Callable[[Tensor], Tensor | dict[str, Tensor]], x: Tensor):
        """``fn(x)`` with the speed options (channels_last input, autocast, outputs cast back to
        ``x.dtype``); with both options off this is exactly ``fn(x)``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.amp_dtype is None:
            return fn(x)
        with torch.autocast(x.device.type, dtype=_AMP_DTYPES[self.amp_dtype]):
            out = fn(x)
        if isinstance(out, dict):
            return {name: t.to(x.dtype) for name, t in out.items()}
        return out.to(x.dtype)

    def normalize(self, crops: Tensor, input_format: str) -> Tensor:
        """Turn crops into the classifier's input.

        Args:
            crops: ``[N,3,h,w]`` float pixels on the 0–255 scale in the student's channel order.
            input_format: the crops' channel order, "BGR" or "RGB" (detectron2's ``INPUT.FORMAT``).
        Returns:
            ``[N,3,h,w]`` in the teacher's channel order, ``(x - pixel_mean) / pixel_std``.
            Differentiable w.r.t. ``crops``.
        """
        if input_format not in ("RGB", "BGR"):
            raise ConfigError(f"input_format must be 'RGB' or 'BGR', got {input_format!r}")
        if crops.dim() != 4 or crops.shape[1] != 3:
            raise ValueError(f"crops must be [N,3,h,w], got shape {tuple(crops.shape)}")
        if input_format != self.meta.channel_order:
            crops = crops.flip(1)
        mean = crops.new_tensor(self.meta.pixel_mean).view(1, 3, 1, 1)
        std = crops.new_tensor(self.meta.pixel_std).view(1, 3, 1, 1)
        return (crops - mean) / std

    def logits(self, x: Tensor, chunk_size: int = 512) -> Tensor:
        """Class logits ``[N,C]`` of normalised crops ``x`` ``[N,3,s,s]``, without gradient,
        computed ``chunk_size`` crops at a time (bounded memory). ``N = 0`` gives ``[0,C]``."""
        self.model.eval()
        with torch.no_grad():
            if x.shape[0] == 0:
                return x.new_zeros((0, self.meta.num_classes))
            out = torch.cat([self._run(self.model, chunk) for chunk in x.split(chunk_size)])
            return out.roll(1, dims=1) if self.derange_classes else out

    def features(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Named layer outputs ``{name: [N,C_l,h_l,w_l]}`` of normalised crops ``x`` ``[N,3,s,s]``
        (see ``TeacherClassifier.forward_features``).

        Keeps the autograd graph to ``x`` (the predicted-box branch of KD_loc back-propagates into
        the box through it); no parameter gets a gradient since none requires one. Call it under
        ``torch.no_grad()`` for a branch that needs none.
        """
        self.model.eval()
        return self._run(lambda inp: self.model.forward_features(inp, layers), x)

    def check_class_names(self, class_names: Sequence[str], where: str) -> None:
        """Raise :class:`TeacherFileError` unless ``class_names`` equals the teacher's classes, in the same order.

        ``where`` names the other side (e.g. "dataset 'coco_2017_train'") in the message."""
        ours, theirs = list(self.meta.class_names), [str(n) for n in class_names]
        if ours == theirs:
            return
        problems = []
        if len(ours) != len(theirs):
            problems.append(f"the teacher has {len(ours)} classes, {where} has {len(theirs)}")
        only_teacher = [n for n in ours if n not in theirs]
        only_other = [n for n in theirs if n not in ours]
        if only_teacher:
            problems.append(f"only in the teacher: {only_teacher}")
        if only_other:
            problems.append(f"only in {where}: {only_other}")
        moved = [
            f"#{i}: teacher '{a}' vs '{b}'"
            for i, (a, b) in enumerate(zip(ours, theirs, strict=False))
            if a != b
        ]
        if moved and not (only_teacher or only_other):
            problems.append("same classes in another order: " + ", ".join(moved[:10]))
        raise TeacherFileError(
            f"teacher classes ({self.path or 'in memory'}) do not match {where}: "
            + "; ".join(problems)
            + ". The teacher's logit i must be the student's class i: use a teacher trained on "
            "these classes in this order."
        )

    def __repr__(self) -> str:
        return (
            f"FrozenTeacher(arch={self.meta.arch}, classes={self.meta.num_classes}, "
            f"input={self.meta.input_size}px {self.meta.channel_order}, path={self.path}"
            + (", classes deranged)" if self.derange_classes else ")")
        )


def build_frozen_teacher(
    path: str,
    channels_last: bool = False,
    amp_dtype: str | None = None,
    derange_classes: bool = False,
) -> FrozenTeacher:
    """:meth:`FrozenTeacher.from_file` as a plain function (for LazyConfig)."""
    return FrozenTeacher.from_file(
        path, channels_last=channels_last, amp_dtype=amp_dtype, derange_classes=derange_classes
    )

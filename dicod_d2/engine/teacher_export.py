"""Teacher training's two ends: write the teacher file when training ends, load weights for eval.

- :class:`TeacherExportHook` (a detectron2 hook, listed in ``train.extra_hooks`` of a teacher
  config) writes ``<output_dir>/teacher.pth`` atomically after the final evaluation, with the
  classes, input size, channel order, normalisation and the recipe including the final top-1.
- :func:`load_classifier_weights` loads a teacher file or a training checkpoint into a
  :class:`~dicod_d2.modeling.classification.CropClassifier`, refusing another architecture,
  another class list or another number of classes with a message that says what to change.
"""

from __future__ import annotations

import logging
import os

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import CheckpointError
from ..modeling.classification import CropClassifier
from ..teacher import TeacherFileError, WeightsMismatchError, read_teacher_file, save_teacher_file
from ..teacher.classifiers import check_state_dict, guess_arch
from ..teacher.frozen import FrozenTeacher

__all__ = ["TeacherExportHook", "load_classifier_weights"]

logger = logging.getLogger(__name__)

_PREFIX = "classifier."


def _unwrap(model: torch.nn.Module) -> CropClassifier:
    model = getattr(model, "module", model)  # DistributedDataParallel
    if not isinstance(model, CropClassifier):
        raise TypeError(f"expected a CropClassifier, got {type(model).__name__}")
    return model


class TeacherExportHook(HookBase):
    """After training, write the teacher file of the trained classifier (main process only).

    Args:
        output_path: the teacher file, e.g. ``<output_dir>/teacher.pth``.
        recipe: how it was trained (augmentation, losses, datasets, schedule...), stored in
            ``TeacherMeta.recipe`` with ``top1`` / ``top5`` added from the last evaluation
            (the ``metric`` scalars in the event storage; None when no evaluation ran).
        metric: the event-storage prefix of the evaluator's results.

    Must be registered after detectron2's ``EvalHook``, whose ``after_train`` runs the final
    evaluation. Nothing is written when training stopped before ``max_iter``.
    """

    def __init__(self, output_path: str, recipe: dict | None = None, metric: str = "classification"):
        self.output_path = str(output_path)
        if isinstance(recipe, (DictConfig, ListConfig)):
            recipe = OmegaConf.to_container(recipe, resolve=True)
        self.recipe = dict(recipe or {})
        self.metric = metric

    def after_train(self) -> None:
        if self.trainer.iter + 1 < self.trainer.max_iter or not comm.is_main_process():
            return
        latest = self.trainer.storage.latest()
        recipe = dict(self.recipe, iterations=self.trainer.max_iter)
        for k in ("top1", "top5"):
            value = latest.get(f"{self.metric}/{k}")
            recipe[k] = round(float(value[0]), 4) if value is not None else None
        model = _unwrap(self.trainer.model)
        save_teacher_file(self.output_path, model.classifier, model.teacher_meta(recipe))
        logger.info(
            "Teacher file written to %s (%s, %d classes, %d px, top-1 %s)",
            self.output_path,
            model.classifier.arch,
            len(model.class_names),
            model.input_size,
            recipe["top1"],
        )


def _checkpoint_state_dict(path: str) -> dict:
    """The classifier weights (torchvision keys) of a training checkpoint ``path``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or not a torch file ({type(e).__name__}: {e})"
        ) from e
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not any(k.startswith(_PREFIX) for k in state):
        raise TeacherFileError(
            f"'{path}' is neither a teacher file nor a teacher-training checkpoint (no "
            f"'{_PREFIX}*' weights): pass train.init_checkpoint=<output_dir>/teacher.pth or "
            "<output_dir>/model_final.pth of a teacher run"
        )
    return {k[len(_PREFIX):]: v for k, v in state.items() if k.startswith(_PREFIX)}


def load_classifier_weights(model: CropClassifier, path: str) -> None:
    """Load a teacher file or a training checkpoint (``model_*.pth``) into ``model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        TeacherFileError / ValueError: another architecture, another number of classes, other
            class names, or not a teacher file nor checkpoint; the message names what differs.
    """
    model = _unwrap(model)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"train.init_checkpoint '{path}' does not exist: give a teacher file (teacher.pth) or a "
            "checkpoint of a teacher-training run"
        )
    arch = model.classifier.arch
    try:
        classifier, meta, _ = read_teacher_file(path)
    except TeacherFileError as e:
        if "not a dicod_d2 teacher file" not in str(e):
            raise
        state = _checkpoint_state_dict(path)
    else:
        if meta.arch != arch:
            raise TeacherFileError(
                f"teacher file '{path}' holds a '{meta.arch}' classifier but the config builds "
                f"'{arch}': set model.arch={meta.arch} (and model.input_size={meta.input_size})"
            )
        FrozenTeacher(classifier, meta, path=path).check_class_names(
            model.class_names, "the evaluated dataset"
        )
        if meta.input_size != model.input_size:
            logger.warning(
                "teacher file '%s' was trained on %d px crops, the config crops %d px",
                path, meta.input_size, model.input_size,
            )
        state = classifier.state_dict()
    try:
        check_state_dict(model.classifier, state, source=f"'{path}'")
    except WeightsMismatchError as e:
        guess = guess_arch(state)
        hint = f" They look like arch '{guess}': set model.arch={guess}." if guess and guess != arch else ""
        raise TeacherFileError(f"{e}.{hint}") from e
    model.classifier.load_state_dict(state, strict=True)
    logger.info("Loaded classifier weights from %s", path)

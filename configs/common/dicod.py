# DICOD distillation settings shared by every student: the paper's T, λ_cls and λ_loc (Sections 3 and
# 4.1, written once in dicod_d2.modeling.distiller.PAPER_SETTINGS), pixels + stem pooled 4 / 8, at the
# authors' balance (each term divided by the normaliser of the student's own loss in the same head,
# not by the number of positives).
from detectron2.config import LazyCall as L

from dicod_d2.data.datasets import thing_classes
from dicod_d2.modeling.distiller import PAPER_SETTINGS, DICODDistiller
from dicod_d2.modeling.variants import VARIANTS
from dicod_d2.teacher import build_frozen_teacher


def _distiller(teacher_path, loc_pix_space, **settings):
    """The LazyCall'ed DICODDistiller every variant and control starts from: the paper's settings,
    the detector's normaliser, the student's ``input_format``, the family's ``loc_pix_space``."""
    return L(DICODDistiller)(
        teacher=None if teacher_path is None else L(build_frozen_teacher)(path=teacher_path),
        **PAPER_SETTINGS,
        normalizer="detector",  # "positives": the 1/K of the paper's Eq. 1-4 as written
        loc_pix_space=loc_pix_space,
        input_format="${..input_format}",
        **settings,
    )


def distiller(teacher_path: str, variant: str = "dicod", *, loc_pix_space: str):
    """A LazyCall'ed DICODDistiller for ``model.distiller``.

    The teacher's class names are checked against the training dataset's ``thing_classes``;
    crops are taken in the student's ``input_format``. ``loc_pix_space``: the student family's
    (see ``DICODDistiller``; SSD: "image").
    """
    return _distiller(
        teacher_path,
        loc_pix_space,
        crop_size=None,  # the teacher's input size (112 in the paper)
        loc_layers=["pixels", "stem"],
        chunk_size=512,
        class_names=L(thing_classes)(dataset_name="${dataloader.train.dataset.names}"),
        **VARIANTS[variant].terms,
    )


def control_distiller(label_smoothing: float = 0.1, teacher_path: str | None = None, *, loc_pix_space: str):
    """A no-teacher control: the KD_cls term toward the label-smoothed ground truth
    ``(1-ε)·onehot + ε/C`` instead of the teacher (same T, λ_cls and normaliser as DICOD).

    With ``teacher_path`` it also adds L_loc_pix (same λ_loc, crops and ``loc_pix_space`` as DICOD),
    the part of DICOD that needs no teacher knowledge: the teacher file then only gives the crops'
    input normalisation, so that the term is on DICOD's scale (no teacher output is computed).
    Without it: KD_cls only (the control of the first ablation).
    """
    with_loc_pix = teacher_path is not None
    return _distiller(
        teacher_path,
        loc_pix_space,
        loc_layers=["pixels"],
        kd_cls_target="label_smoothing",
        label_smoothing=label_smoothing,
        kd_cls=True,
        loc_pix=with_loc_pix,
        kd_loc=False,
    )

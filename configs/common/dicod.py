# DICOD distillation settings shared by every student: the paper's defaults (Sections 3 and 4.1: T = 2,
# λ_cls = 0.4, λ_loc = 0.15, pixels + stem pooled 4 / 8) at the authors' balance (each term divided by
# the normaliser of the student's own loss in the same head, not by the number of positives).
from detectron2.config import LazyCall as L

from dicod_d2.data.datasets import thing_classes
from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.modeling.variants import VARIANTS
from dicod_d2.teacher import build_frozen_teacher


def distiller(teacher_path: str, variant: str = "dicod"):
    """A LazyCall'ed DICODDistiller for ``model.distiller``.

    The teacher's class names are checked against the training dataset's ``thing_classes``;
    crops are taken in the student's ``input_format``.
    """
    return L(DICODDistiller)(
        teacher=L(build_frozen_teacher)(path=teacher_path),
        temperature=2.0,
        kd_cls_weight=0.4,
        loc_weight=0.15,
        crop_size=None,  # the teacher's input size (112 in the paper)
        loc_layers=["pixels", "stem"],
        chunk_size=512,
        normalizer="detector",  # "positives": the 1/K of the paper's Eq. 1-4 as written
        loc_pix_space="teacher",  # SSD students: "image" (dicod_variant sets it)
        input_format="${..input_format}",
        class_names=L(thing_classes)(dataset_name="${dataloader.train.dataset.names}"),
        **VARIANTS[variant].terms,
    )


def control_distiller(label_smoothing: float = 0.1, teacher_path: str | None = None):
    """A no-teacher control: the KD_cls term toward the label-smoothed ground truth
    ``(1-ε)·onehot + ε/C`` instead of the teacher (same T, λ_cls and normaliser as DICOD).

    With ``teacher_path`` it also adds L_loc_pix (same λ_loc and crops as DICOD), the part of
    DICOD that needs no teacher knowledge: the teacher file then only gives the crops' input
    normalisation, so that the term is on DICOD's scale (no teacher output is computed).
    Without it: KD_cls only (the control of the first ablation).
    """
    with_loc_pix = teacher_path is not None
    return L(DICODDistiller)(
        teacher=L(build_frozen_teacher)(path=teacher_path) if with_loc_pix else None,
        temperature=2.0,
        kd_cls_weight=0.4,
        loc_weight=0.15,
        loc_layers=["pixels"],
        normalizer="detector",
        loc_pix_space="teacher",  # SSD students: "image" (dicod_variant sets it)
        input_format="${..input_format}",
        kd_cls_target="label_smoothing",
        label_smoothing=label_smoothing,
        kd_cls=True,
        loc_pix=with_loc_pix,
        kd_loc=False,
    )

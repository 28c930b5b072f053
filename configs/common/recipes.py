# Shared pieces of the students' configs: the paper's COCO epoch recipes and the DICOD variants.
#
# A baseline config sets its schedule with `coco_recipe(...)`; each variant config imports the
# baseline and calls `dicod_variant(model, train, "<variant>", TEACHER)` (SSD students also pass their
# family's `loc_pix_space`, configs/common/models/ssd.py), so a variant differs from
# its baseline only in `model._target_` (and `model.roi_heads._target_`), `model.distiller` and
# `train.output_dir`.
from detectron2.modeling.meta_arch import GeneralizedRCNN, RetinaNet
from detectron2.modeling.roi_heads import StandardROIHeads

from dicod_d2.modeling.meta_arch.rcnn import DICODGeneralizedRCNN
from dicod_d2.modeling.meta_arch.retinanet import DICODRetinaNet
from dicod_d2.modeling.roi_heads import DICODROIHeads
from dicod_d2.modeling.variants import BASELINE, CONTROLS, VARIANTS

from .dicod import control_distiller, distiller
from .schedule import coco_schedule

#: default teacher files (paper, supplementary S2 and Table S1), written by the configs/teacher/{coco,fashiondet}/*.py runs:
#: general aug + CE + FL for Faster R-CNN and RetinaNet, SSD aug + CE for SSD (112 px on COCO, 56 px
#: on FashionDet); override with model.distiller.teacher.path=...
COCO_TEACHER = "output/teacher/coco/resnet50_112_general_ce_fl/teacher.pth"
COCO_SSD_TEACHER = "output/teacher/coco/resnet50_112_ssd_ce/teacher.pth"
FASHIONDET_TEACHER = "output/teacher/fashiondet/efficientnet_lite0_56_general_ce_fl/teacher.pth"
FASHIONDET_SSD_TEACHER = "output/teacher/fashiondet/resnet_tiny_56_ssd_ce/teacher.pth"

#: baseline class -> DICOD student class (students whose class already takes a distiller map to themselves)
_STUDENT_CLASS = {RetinaNet: DICODRetinaNet, GeneralizedRCNN: DICODGeneralizedRCNN}
_ROI_HEADS_CLASS = {StandardROIHeads: DICODROIHeads}


def coco_recipe(
    model,
    dataloader,
    optimizer,
    train,
    *,
    name,
    epochs,
    steps,
    batch_size,
    lr,
    repeat=1,
    warmup_iters=500,
):
    """Set an epoch schedule of the paper on COCO train2017 in place; return ``lr_multiplier``.

    ``epochs`` / ``steps`` (÷10 epochs) count passes over the dataset repeated ``repeat`` times (SSD:
    24 epochs of the dataset ×5). Sets the total batch size, the base lr, ``train.max_iter``, a
    checkpoint every epoch, an evaluation every quarter of the run (and at the end),
    ``train.output_dir = ./output/coco/<name>/baseline`` and the data mappers' image format to the
    model's ``input_format``.
    """
    images_per_epoch = 117266 * repeat
    max_iter, lr_multiplier = coco_schedule(
        epochs, steps, batch_size, warmup_iters=warmup_iters, images_per_epoch=images_per_epoch
    )
    iters_per_epoch = images_per_epoch // batch_size
    dataloader.train.total_batch_size = batch_size
    dataloader.train.mapper.image_format = model.input_format
    optimizer.lr = lr
    train.max_iter = max_iter
    train.checkpointer.period = iters_per_epoch
    train.eval_period = iters_per_epoch * max(1, epochs // 4)
    train.output_dir = f"./output/coco/{name}/{BASELINE}"
    return lr_multiplier


def dicod_variant(model, train, variant, teacher_path=None, *, loc_pix_space="teacher"):
    """Turn a baseline student config into one DICOD variant, in place.

    Args:
        model: the baseline's ``model`` (RetinaNet, GeneralizedRCNN with StandardROIHeads, or SSD).
        train: the baseline's ``train``; its ``output_dir`` must end with "baseline", which is
            replaced by ``variant``.
        variant: a distillation variant of :data:`dicod_d2.modeling.variants.VARIANTS` ("kd_cls",
            "loc", "loc_kd_loc", "dicod"), or a control of :data:`CONTROLS`.
        teacher_path: the teacher file (``model.distiller.teacher.path``); unused by "control".
        loc_pix_space: the pixels L_loc_pix compares for this student family (``DICODDistiller``'s
            argument): "teacher", or "image" for SSD (the ``LOC_PIX_SPACE`` of its model config).
    """
    distilled = [name for name in VARIANTS if name != BASELINE] + list(CONTROLS)
    if variant not in distilled:
        raise ValueError(f"unknown DICOD variant {variant!r}; choose among {distilled}.")
    if not str(train.output_dir).endswith(BASELINE):
        raise ValueError(
            f"train.output_dir={train.output_dir!r} of the baseline must end with '{BASELINE}' "
            "(the variant's folder replaces that suffix)."
        )
    model._target_ = _STUDENT_CLASS.get(model._target_, model._target_)
    if "roi_heads" in model:
        model.roi_heads._target_ = _ROI_HEADS_CLASS.get(
            model.roi_heads._target_, model.roi_heads._target_
        )
    if variant == "control":
        model.distiller = control_distiller(loc_pix_space=loc_pix_space)
    elif variant == "no_teacher":
        model.distiller = control_distiller(teacher_path=teacher_path, loc_pix_space=loc_pix_space)
    else:
        variant_terms = "dicod" if variant == "wrong_teacher" else variant
        model.distiller = distiller(teacher_path, variant_terms, loc_pix_space=loc_pix_space)
        model.distiller.teacher.derange_classes = variant == "wrong_teacher"
    train.output_dir = str(train.output_dir)[: -len(BASELINE)] + variant

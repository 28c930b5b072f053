# Object crops of a detection dataset for teacher training (dicod_d2/data/object_crops.py).
#
# `crop_dataloader(...)` builds `dataloader.{train,test,evaluator}`; the two augmentation recipes
# reuse the students' own detectron2 augmentation lists:
#   general_recipe(student_dataloader): the Faster R-CNN / RetinaNet student's train / test lists
#       (resize shortest edge + flip on COCO; flip at the native 256 px on FashionDet);
#   ssd_recipe(student_model): SSD's augmentation (dicod_d2.data.transforms.ssd_augment) with the
#       SSD student's size, pixel mean (the expand fill) and channel order, as the SSD students'
#       data config (configs/common/data/ssd.py) does.
# The whole image is augmented, then every object is cropped (roi_align) to model.input_size px.
import copy

from detectron2.config import LazyCall as L
from detectron2.data import build_detection_train_loader
from omegaconf import OmegaConf

from dicod_d2.data.object_crops import ObjectCropMapper, build_crop_test_loader, load_object_records
from dicod_d2.data.transforms.ssd_augment import (
    SSD_EXPAND_MAX,
    ssd_test_augmentations,
    ssd_train_augmentations,
)
from dicod_d2.evaluation.classification import ClassificationEvaluator


def general_recipe(student_dataloader):
    """(train, test) augmentation lists of a general (Faster R-CNN / RetinaNet) student config."""
    return (
        copy.deepcopy(student_dataloader.train.mapper.augmentations),
        copy.deepcopy(student_dataloader.test.mapper.augmentations),
    )


def ssd_recipe(student_model, expand_max=SSD_EXPAND_MAX):
    """(train, test) augmentation lists of the SSD student ``student_model`` (an SSD model config,
    configs/common/models/ssd.py): its ``backbone.size``, ``pixel_mean`` (0..255) and
    ``input_format``, and the student's ``expand_max`` (as given to ``ssd_dataloader``); crop with
    ``image_format=student_model.input_format``."""
    size = student_model.backbone.size
    return (
        L(ssd_train_augmentations)(
            size=size, mean=list(student_model.pixel_mean), image_format=student_model.input_format,
            expand_max=expand_max,
        ),
        L(ssd_test_augmentations)(size=size),
    )


def crop_dataloader(train_names, test_names, recipe, image_format="BGR", batch_size=32,
                    num_workers=4, test_batch_size=8):
    """Crop loaders (``batch_size`` images per iteration, all their objects) and the top-1/top-5
    evaluator; the crop size is ``model.input_size``."""
    train_augs, test_augs = recipe
    dataloader = OmegaConf.create()
    dataloader.train = L(build_detection_train_loader)(
        dataset=L(load_object_records)(names=train_names, require_all_classes=True),
        mapper=L(ObjectCropMapper)(
            augmentations=train_augs, crop_size="${model.input_size}", image_format=image_format
        ),
        total_batch_size=batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
    )
    dataloader.test = L(build_crop_test_loader)(
        dataset=L(load_object_records)(names=test_names),
        mapper=L(ObjectCropMapper)(
            augmentations=test_augs,
            crop_size="${model.input_size}",
            image_format="${...train.mapper.image_format}",
        ),
        batch_size=test_batch_size,
        num_workers=num_workers,
    )
    dataloader.evaluator = L(ClassificationEvaluator)(
        dataset_name="${..test.dataset.names}", output_dir="${train.output_dir}"
    )
    return dataloader

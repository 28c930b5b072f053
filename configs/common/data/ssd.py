# SSD's detection data pipeline (paper, supplementary S3) on top of any detection dataloader config
# (configs/common/data/coco.py, configs/common/data/fashiondet.py).
#
# Training: photometric distortion → expand ×[1, 4] filled with the model's pixel mean → min-IoU
# random crop → resize to size² → flip 0.5 (dicod_d2.data.transforms.ssd_augment), in a mapper that
# gives the boxes to the crop (BoxAugDatasetMapper). Test: resize to size². The size, the fill
# mean and the channel order follow the config's `model` (backbone.size, pixel_mean, input_format).
import copy

from detectron2.config import LazyCall as L

from dicod_d2.data.dataset_mapper import BoxAugDatasetMapper
from dicod_d2.data.transforms.ssd_augment import (
    SSD_EXPAND_MAX,
    ssd_test_augmentations,
    ssd_train_augmentations,
)


def ssd_dataloader(dataloader, expand_max=SSD_EXPAND_MAX):
    """A copy of a detection ``dataloader`` config whose mappers apply SSD's augmentation.

    The train mapper reads images in ``model.input_format``; the test mapper follows the train
    mapper's format (as in the base configs). ``expand_max``: the largest zoom-out ratio of the
    expand step (SSD's ×4 by default; 1 leaves the step out).
    """
    dataloader = copy.deepcopy(dataloader)
    dataloader.train.mapper = L(BoxAugDatasetMapper)(
        is_train=True,
        augmentations=L(ssd_train_augmentations)(
            size="${model.backbone.size}",
            mean="${model.pixel_mean}",  # 0..255, in the model's channel order
            image_format="${..image_format}",
            expand_max=expand_max,
        ),
        image_format="${model.input_format}",
    )
    dataloader.test.mapper.augmentations = L(ssd_test_augmentations)(size="${model.backbone.size}")
    return dataloader

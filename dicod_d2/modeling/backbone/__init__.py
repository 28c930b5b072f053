"""Student backbones: EfficientNet-Lite0 (ImageNet-initialised), MobileNetV2, width-reduced ResNets (QR50), VGG16 for SSD."""
from .efficientnet_lite import (
    LITE0_IMAGENET,
    LITE0_INPUT_FORMAT,
    LITE0_PIXEL_MEAN,
    LITE0_PIXEL_STD,
    EfficientNetLite0,
    build_efficientnet_lite_backbone,
    build_efficientnet_lite_fpn_backbone,
)
from .mobilenet_v2 import MobileNetV2, build_mobilenetv2_backbone, build_mobilenetv2_fpn_backbone
from .resnet_width import build_fpn, build_resnet_width_backbone, build_resnet_width_fpn_backbone
from .weights import (
    TORCHVISION_PIXEL_MEAN,
    TORCHVISION_PIXEL_STD,
    WeightLoadReport,
    load_torchvision_weights,
)

__all__ = [
    "EfficientNetLite0", "build_efficientnet_lite_backbone", "build_efficientnet_lite_fpn_backbone",
    "LITE0_IMAGENET", "LITE0_INPUT_FORMAT", "LITE0_PIXEL_MEAN", "LITE0_PIXEL_STD",
    "MobileNetV2", "build_mobilenetv2_backbone", "build_mobilenetv2_fpn_backbone", "build_fpn",
    "build_resnet_width_backbone", "build_resnet_width_fpn_backbone", "load_torchvision_weights",
    "WeightLoadReport", "TORCHVISION_PIXEL_MEAN", "TORCHVISION_PIXEL_STD",
]

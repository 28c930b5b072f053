# RetinaNet R50-FPN (detectron2's COCO RetinaNet) on a torchvision-format ImageNet ResNet50.
#
# The backbone loads a LOCAL torchvision state dict (nothing is downloaded): copy torchvision's
# resnet50 IMAGENET1K_V1 file (resnet50-0676ba61.pth) to the path below or override
# `model.backbone.weights=/path/resnet50.pth`. With pretrained weights the usual practice holds:
# FrozenBN everywhere, stem + res2 frozen (freeze_at=2). torchvision weights expect RGB input
# normalised with the ImageNet mean/std, hence input_format / pixel_mean / pixel_std below (the
# data mappers must read RGB: see configs/coco/_recipe.py).
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch import RetinaNet
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

from dicod_d2.modeling.backbone import (
    TORCHVISION_PIXEL_MEAN,
    TORCHVISION_PIXEL_STD,
    build_resnet_width_fpn_backbone,
)

model = L(RetinaNet)(
    backbone=L(build_resnet_width_fpn_backbone)(
        depth=50,
        width_divisor=1,
        out_channels=256,
        norm="FrozenBN",
        freeze_at=2,
        weights="weights/resnet50-0676ba61.pth",
        in_features=["res3", "res4", "res5"],
        top_block=L(LastLevelP6P7)(in_channels=2048, out_channels="${..out_channels}"),
    ),
    head=L(RetinaNetHead)(
        input_shape=[L(ShapeSpec)(channels="${....backbone.out_channels}")] * 5,
        num_classes="${..num_classes}",
        conv_dims=[256, 256, 256, 256],
        prior_prob=0.01,
        num_anchors=9,
    ),
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
    anchor_matcher=L(Matcher)(thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True),
    num_classes=80,
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    pixel_mean=TORCHVISION_PIXEL_MEAN,
    pixel_std=TORCHVISION_PIXEL_STD,
    input_format="RGB",
)

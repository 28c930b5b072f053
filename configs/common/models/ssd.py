"""SSD300 (``model``) and SSD512 (``model_512``) with a VGG16 backbone, COCO (80 classes).

The images are RGB normalised with the ImageNet mean / std, as torchvision's VGG16 expects
(pretrained weights: ``model.backbone.weights = "/path/vgg16.pth"``, a torchvision state dict);
the data mapper must read images as RGB. A slim network for CPU runs:
``model.backbone.width = 0.25`` (the head follows) and ``model.backbone.norm = "BN"`` from scratch.
"""
import copy

from detectron2.config import LazyCall as L
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher

from dicod_d2.modeling.backbone.vgg import VGG16SSD, vgg16_ssd_feature_shapes
from dicod_d2.modeling.meta_arch.ssd import SSD, SSDHead
from dicod_d2.modeling.ssd_anchors import SSDAnchorGenerator

#: L_loc_pix's pixel space for SSD students (DICODDistiller's loc_pix_space, passed by the variant
#: configs to dicod_variant): the authors' SSD crops its mean-subtracted, std-1 input, so the term is
#: on the image's 0-255 scale.
LOC_PIX_SPACE = "image"

model = L(SSD)(
    backbone=L(VGG16SSD)(size=300, width=1.0, norm="", weights=None),
    head=L(SSDHead)(
        input_shape=L(vgg16_ssd_feature_shapes)(
            size="${...backbone.size}", width="${...backbone.width}"
        ),
        num_classes="${..num_classes}",
        num_anchors=[4, 6, 6, 6, 4, 4],  # 2 + 2 * len(aspect ratios) per level
    ),
    anchor_generator=L(SSDAnchorGenerator)(
        input_size="${..backbone.size}",
        strides=[8, 16, 32, 64, 100, 300],
        aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        ratio_range=(0.15, 0.9),
        first_level_ratios=(0.07, 0.15),
    ),
    box2box_transform=L(Box2BoxTransform)(weights=(10.0, 10.0, 5.0, 5.0)),
    anchor_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False),
    num_classes=80,
    pixel_mean=[123.675, 116.28, 103.53],
    pixel_std=[58.395, 57.12, 57.375],
    input_format="RGB",
    neg_pos_ratio=3,
    smooth_l1_beta=1.0,
    test_score_thresh=0.02,
    test_topk_candidates=1000,
    test_nms_thresh=0.45,
    max_detections_per_image=200,
)

model_512 = copy.deepcopy(model)
model_512.backbone.size = 512
model_512.head.num_anchors = [4, 6, 6, 6, 6, 4, 4]
model_512.anchor_generator.strides = [8, 16, 32, 64, 128, 256, 512]
model_512.anchor_generator.aspect_ratios = [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]
model_512.anchor_generator.ratio_range = (0.1, 0.9)
model_512.anchor_generator.first_level_ratios = (0.04, 0.1)

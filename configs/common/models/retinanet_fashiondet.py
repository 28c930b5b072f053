# A compact RetinaNet that trains from scratch on a CPU: half-width ResNet-18 with BN, 64-channel
# FPN p3..p7, a two-conv head. FashionDet images are 256 px with objects from ~12 to ~190 px.
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from dicod_d2.modeling.backbone import build_resnet_width_fpn_backbone

from .retinanet import model

model.backbone = L(build_resnet_width_fpn_backbone)(
    depth=18,
    width_divisor=2,
    out_channels=64,
    norm="BN",
    freeze_at=0,
    weights=None,
    in_features=["res3", "res4", "res5"],
    top_block=L(LastLevelP6P7)(in_channels=256, out_channels="${..out_channels}"),  # res5: 256 ch
)
model.head.conv_dims = [64, 64]
model.anchor_generator.sizes = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [16, 32, 64, 128, 256]]
model.num_classes = 10
# BGR input as configs/common/data/fashiondet.py reads it (same normalisation as faster_rcnn_fashiondet)
model.pixel_mean = [103.530, 116.280, 123.675]
model.pixel_std = [1.0, 1.0, 1.0]
model.input_format = "BGR"

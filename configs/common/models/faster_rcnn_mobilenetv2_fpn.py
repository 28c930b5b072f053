# Faster R-CNN MobileNetV2-FPN (paper, Section 4.1; supplementary S3).
#
# ImageNet weights: torchvision's mobilenet_v2 IMAGENET1K_V1 state dict (mobilenet_v2-b0353104.pth)
# copied to the path below, or `model.backbone.weights=/path/mobilenet_v2.pth` (nothing is
# downloaded). Pretrained practice: FrozenBN, stem + res2 frozen; RGB input with the ImageNet mean/std.
from detectron2.config import LazyCall as L

from dicod_d2.modeling.backbone import build_mobilenetv2_fpn_backbone

from .faster_rcnn_qr50_fpn import model

model.backbone = L(build_mobilenetv2_fpn_backbone)(
    out_channels=256,
    norm="FrozenBN",
    freeze_at=2,
    weights="weights/mobilenet_v2-b0353104.pth",
    width_mult=1.0,
)

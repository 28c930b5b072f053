# Faster R-CNN R50-FPN on a torchvision-format ImageNet ResNet50 (the paper's larger students, Section 4).
#
# ImageNet weights: torchvision's resnet50 IMAGENET1K_V1 state dict (resnet50-0676ba61.pth) copied to
# the path below, or `model.backbone.weights=/path/resnet50.pth` (nothing is downloaded).
# Pretrained practice: FrozenBN, stem + res2 frozen; RGB input with the ImageNet mean/std.
from .faster_rcnn_qr50_fpn import model

model.backbone.width_divisor = 1
model.backbone.weights = "weights/resnet50-0676ba61.pth"

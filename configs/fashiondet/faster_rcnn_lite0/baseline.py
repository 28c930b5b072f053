# Baseline Faster R-CNN student on FashionDet with an ImageNet-initialised EfficientNet-Lite0-FPN
# backbone (both teacher and student start from ImageNet, as in the paper). Schedule of
# ../faster_rcnn/baseline.py: 600 iterations at batch 8, gradient clipping.
from ...common.models.faster_rcnn_lite0_fashiondet import model
from ..faster_rcnn.baseline import dataloader, lr_multiplier, optimizer, train

dataloader.train.mapper.image_format = model.input_format  # RGB, as the Lite0 weights expect
train.output_dir = "./output/fashiondet/faster_rcnn_lite0_baseline"
# A pretrained backbone usually wants a lower lr than the from-scratch 0.02; the value is chosen on
# val with the baseline only (candidates 0.01, 0.02).
optimizer.lr = 0.01

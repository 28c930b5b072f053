# Baseline Faster R-CNN student on FashionDet with an ImageNet-initialised EfficientNet-Lite0-FPN
# backbone (both teacher and student start from ImageNet, as in the paper). Schedule of
# ../faster_rcnn/baseline.py: 600 iterations at batch 8, gradient clipping.
from ...common.models.faster_rcnn_lite0_fashiondet import model
from ..faster_rcnn.baseline import dataloader, lr_multiplier, optimizer, train

dataloader.train.mapper.image_format = model.input_format  # RGB, as the Lite0 weights expect
train.output_dir = "./output/fashiondet/faster_rcnn_lite0_baseline"
# lr chosen on FashionDet val with the baseline only (seed 0): 0.02 (val AP 38.1) over 0.01 (37.0),
# see projects/DICOD/RESULTS.md.
optimizer.lr = 0.02

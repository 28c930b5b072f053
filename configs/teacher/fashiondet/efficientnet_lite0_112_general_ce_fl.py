# The 56 px EfficientNet-Lite0 teacher at the paper's default distillation size, 112 px (Table S1):
# the strongest FashionDet teacher of the Faster R-CNN / RetinaNet students (4x the compute per crop).
from .efficientnet_lite0_56_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.input_size = 112
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite0_112_general_ce_fl"

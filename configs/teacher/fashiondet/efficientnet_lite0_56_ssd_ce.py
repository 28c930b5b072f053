# FashionDet teacher for the SSD students in the paper's regime: EfficientNet-Lite0 (ImageNet weights)
# fine-tuned at 56 px with CE on crops under the SSD students' own augmentation (the "ssd" recipe of
# supplementary S2), with the schedule of efficientnet_lite0_56_general_ce_fl.py.
from .efficientnet_lite0_56_general_ce_fl import lr_multiplier, model, optimizer, train
from .resnet_tiny_56_ssd_ce import dataloader

model.losses = ["ce"]
train.extra_hooks[0].recipe.augmentation = "ssd"
train.output_dir = "./output/teacher/fashiondet/efficientnet_lite0_56_ssd_ce"

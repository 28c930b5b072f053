# Demo teacher for the FashionDet students (Faster R-CNN / RetinaNet): resnet_tiny from scratch,
# 56 px, "general" augmentation of the FashionDet student (flip at the native 256 px), CE + focal.
# Trains on a CPU in minutes; the paper's 90-epoch shape: lr /10 at 5/9 of the run.
from ...common.data.fashiondet import dataloader as fashiondet_student
from ...common.data.object_crops import crop_dataloader, general_recipe
from ...common.schedule import multistep
from .._base_ import model, optimizer, train

dataloader = crop_dataloader("fashiondet_train", "fashiondet_val", general_recipe(fashiondet_student),
                             image_format="BGR", batch_size=16, num_workers=2)
model.arch = "resnet_tiny"
model.init_weights = None
model.input_size = 56
model.losses = ["ce", "focal"]
optimizer.lr = 1e-3  # from scratch: Adam's default rate
train.max_iter = 1500
lr_multiplier = multistep(train.max_iter, steps=(train.max_iter * 5 // 9,), warmup_iters=0)
train.eval_period = 500
train.checkpointer.period = 500
train.output_dir = "./output/teacher/fashiondet/resnet_tiny_56_general_ce_fl"

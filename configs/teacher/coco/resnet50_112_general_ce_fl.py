# ResNet50 teacher, 112 px, "general" augmentation, CE + focal loss (Faster R-CNN / RetinaNet
# students; paper top-1 81.02). 90 epochs, lr 1e-4 /10 at epoch 50, 32 images (~230 crops) a batch.
# ImageNet init: torchvision's resnet50-0676ba61.pth saved under ./weights (no download here).
from ...common.data.coco import dataloader as _coco_student
from ...common.data.object_crops import crop_dataloader, general_recipe
from ...common.schedule import coco_schedule
from .._base_ import model, optimizer, train

dataloader = crop_dataloader("coco_2017_train", "coco_2017_val", general_recipe(_coco_student),
                             image_format="BGR", batch_size=32, num_workers=8)
model.arch = "resnet50"
model.init_weights = "weights/resnet50-0676ba61.pth"
model.input_size = 112
model.losses = ["ce", "focal"]
train.max_iter, lr_multiplier = coco_schedule(90, (50,), batch_size=32, warmup_iters=0)
train.eval_period = train.max_iter // 18  # every 5 epochs
train.checkpointer.period = train.max_iter // 18
train.output_dir = "./output/teacher/coco/resnet50_112_general_ce_fl"

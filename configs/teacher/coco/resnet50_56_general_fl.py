# ResNet50 teacher, 56 px, "general" augmentation, FL (table S1).
from .resnet50_112_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.input_size = 56
model.losses = ["focal"]
train.output_dir = "./output/teacher/coco/resnet50_56_general_fl"

# ResNet50 teacher, 56 px, "general" augmentation, CE (table S1).
from .resnet50_112_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.input_size = 56
model.losses = ["ce"]
train.output_dir = "./output/teacher/coco/resnet50_56_general_ce"

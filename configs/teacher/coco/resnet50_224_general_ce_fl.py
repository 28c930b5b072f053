# ResNet50 teacher, 224 px, "general" augmentation, CE + FL (table S1).
from .resnet50_112_general_ce_fl import dataloader, lr_multiplier, model, optimizer, train

model.input_size = 224
model.losses = ["ce", "focal"]
train.output_dir = "./output/teacher/coco/resnet50_224_general_ce_fl"

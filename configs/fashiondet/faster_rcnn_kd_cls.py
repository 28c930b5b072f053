# Faster R-CNN FashionDet student with KD_cls only (the "+KD_cls" column of method.md §7).
from ..common.dicod import distiller
from .faster_rcnn_dicod import dataloader, lr_multiplier, model, optimizer, train

model.distiller = distiller(model.distiller.teacher.path, "kd_cls")
train.output_dir = "./output/fashiondet/faster_rcnn_kd_cls"

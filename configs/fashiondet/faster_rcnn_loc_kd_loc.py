# Faster R-CNN FashionDet student with loc_pix + KD_loc (the "+loc_pix+KD_loc" column of method.md §7).
from ..common.dicod import distiller
from .faster_rcnn_dicod import dataloader, lr_multiplier, model, optimizer, train

model.distiller = distiller(model.distiller.teacher.path, "loc_kd_loc")
train.output_dir = "./output/fashiondet/faster_rcnn_loc_kd_loc"

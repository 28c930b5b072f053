# COCO faster_rcnn_mobilenetv2_1x: +loc_pix (paper, Section 4). Teacher: model.distiller.teacher.path=...
from ...common.recipes import COCO_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "loc", COCO_TEACHER)

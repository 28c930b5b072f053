# COCO retinanet_r50_2x: +KD_cls (paper, Section 4). Teacher: model.distiller.teacher.path=...
from ...common.recipes import COCO_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "kd_cls", COCO_TEACHER)

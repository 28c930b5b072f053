# FashionDet faster_rcnn_qr50: +KD_cls. Teacher: model.distiller.teacher.path=...
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "kd_cls", FASHIONDET_TEACHER)

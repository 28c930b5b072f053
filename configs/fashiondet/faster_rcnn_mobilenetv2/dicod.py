# FashionDet faster_rcnn_mobilenetv2: full DICOD (KD_cls + loc_pix + KD_loc). Teacher: model.distiller.teacher.path=...
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "dicod", FASHIONDET_TEACHER)

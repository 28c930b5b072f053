# FashionDet faster_rcnn_qr50: +loc_pix+KD_loc. Teacher: model.distiller.teacher.path=...
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "loc_kd_loc", FASHIONDET_TEACHER)

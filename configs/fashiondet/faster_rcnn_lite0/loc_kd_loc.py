# FashionDet Faster R-CNN student, ImageNet-initialised Lite0 backbone: the "loc_kd_loc" DICOD variant
# (paper, Section 4) of baseline.py.
# Teacher file: model.distiller.teacher.path=... (default: the FashionDet teacher config's output).
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "loc_kd_loc", FASHIONDET_TEACHER)

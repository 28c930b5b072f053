# FashionDet ssd: +loc_pix+KD_loc. Teacher (SSD aug + CE): model.distiller.teacher.path=...
from ...common.models.ssd import LOC_PIX_SPACE
from ...common.recipes import FASHIONDET_SSD_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "loc_kd_loc", FASHIONDET_SSD_TEACHER, loc_pix_space=LOC_PIX_SPACE)

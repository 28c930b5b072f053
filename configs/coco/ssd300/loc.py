# COCO ssd300: +loc_pix (paper, Section 4). Teacher: model.distiller.teacher.path=...
from ...common.models.ssd import LOC_PIX_SPACE
from ...common.recipes import COCO_SSD_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "loc", COCO_SSD_TEACHER, loc_pix_space=LOC_PIX_SPACE)

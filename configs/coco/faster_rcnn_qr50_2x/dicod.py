# COCO faster_rcnn_qr50_2x: full DICOD (KD_cls + loc_pix + KD_loc) (paper, Section 4). Teacher: model.distiller.teacher.path=...
from ...common.recipes import COCO_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "dicod", COCO_TEACHER)

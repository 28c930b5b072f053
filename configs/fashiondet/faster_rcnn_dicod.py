# Faster R-CNN FashionDet student with full DICOD (KD_cls + loc_pix + KD_loc on the box head's
# positive proposals, method.md §5). Teacher file: model.distiller.teacher.path=...
from dicod_d2.modeling import DICODGeneralizedRCNN, DICODROIHeads

from ..common.dicod import distiller
from .faster_rcnn_baseline import dataloader, lr_multiplier, model, optimizer, train

model._target_ = DICODGeneralizedRCNN
model.roi_heads._target_ = DICODROIHeads
model.distiller = distiller("output/teachers/fashiondet/teacher.pth", "dicod")
train.output_dir = "./output/fashiondet/faster_rcnn_dicod"
# DDP wraps the student only (the teacher lives outside the module tree) and every student parameter
# gets a gradient in every step, also without positives (the distiller's zero stays connected to the
# box head), so DDP needs no search for unused parameters.
train.ddp.find_unused_parameters = False

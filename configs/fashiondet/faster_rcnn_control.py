# Control for the demo's ablation: the KD_cls term of DICOD toward the label-smoothed ground truth
# instead of the teacher (no teacher at all), to measure how much of DICOD's gain is the teacher's.
from ..common.dicod import control_distiller
from .faster_rcnn_dicod import dataloader, lr_multiplier, model, optimizer, train

model.distiller = control_distiller(label_smoothing=0.1)
train.output_dir = "./output/fashiondet/faster_rcnn_control"

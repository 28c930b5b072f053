# No-teacher control, RetinaNet: everything full DICOD does except what needs a teacher: KD_cls toward
# the label-smoothed ground truth (same positives, T, λ_cls and normaliser) plus L_loc_pix (same λ_loc
# and crops; the teacher file gives only the crops' normalisation).
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "no_teacher", FASHIONDET_TEACHER)
# ε chosen on FashionDet val (seed 0) among 0.05, 0.1, 0.2 and 0.3 for this student
# (projects/DICOD/RESULTS.md)
model.distiller.label_smoothing = 0.05

# No-teacher control, SSD: everything full DICOD does except what needs a teacher: KD_cls toward the
# label-smoothed ground truth (same positives, T, λ_cls and normaliser) plus L_loc_pix on the image's
# pixels (same λ_loc and crops; the teacher file gives only the crops' normalisation).
from ...common.models.ssd import LOC_PIX_SPACE
from ...common.recipes import FASHIONDET_SSD_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "no_teacher", FASHIONDET_SSD_TEACHER, loc_pix_space=LOC_PIX_SPACE)

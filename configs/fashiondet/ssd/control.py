# Control for the demo's ablation: the KD_cls term of DICOD toward the label-smoothed ground truth
# instead of the teacher (no teacher at all), to measure how much of DICOD's gain is the teacher's.
from ...common.models.ssd import LOC_PIX_SPACE
from ...common.recipes import dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "control", loc_pix_space=LOC_PIX_SPACE)

# Control for the ablation, ImageNet-initialised Lite0 backbone: the KD_cls term of DICOD toward the
# label-smoothed ground truth instead of the teacher (no teacher at all).
from ...common.recipes import dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "control")

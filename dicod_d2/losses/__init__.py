"""DICOD distillation losses (the paper's Section 3)."""
from .kd_cls import kd_cls_sigmoid, kd_cls_softmax
from .kd_loc import default_loc_pools, loc_feature_loss, loc_pixel_loss

__all__ = ["default_loc_pools", "kd_cls_sigmoid", "kd_cls_softmax", "loc_feature_loss", "loc_pixel_loss"]

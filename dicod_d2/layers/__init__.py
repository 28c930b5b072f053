"""Layers: box crops for the DICOD teacher."""
from .box_crops import MIN_BOX_SIZE, crop_boxes_differentiable, crop_boxes_roi_align, prepare_boxes

__all__ = ["MIN_BOX_SIZE", "crop_boxes_differentiable", "crop_boxes_roi_align", "prepare_boxes"]

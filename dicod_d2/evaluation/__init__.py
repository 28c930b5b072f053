from .coco import IOU_THRESHOLDS, COCOEvaluator

__all__ = ["COCOEvaluator", "IOU_THRESHOLDS"]

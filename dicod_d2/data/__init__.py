"""Datasets (FashionDet, object crops for the teacher) and data transforms.

Importing this package registers the FashionDet splits with detectron2 (under the data root of
``DICOD_DATASETS`` / ``DETECTRON2_DATASETS``, default ``./datasets``).
"""
from .datasets import get_data_root, register_all_fashiondet, register_fashiondet

register_all_fashiondet()

__all__ = ["get_data_root", "register_all_fashiondet", "register_fashiondet"]

"""Datasets (FashionDet, object crops for the teacher) and data transforms.

Importing this package registers the FashionDet splits with detectron2 (under the data root of
``DICOD_DATASETS`` / ``DETECTRON2_DATASETS``, default ``./datasets``) and applies the
``MapDataset`` fix of :mod:`dicod_d2.compat`.
"""
from ..compat import patch_map_dataset
from .datasets import get_data_root, register_all_fashiondet, register_fashiondet

patch_map_dataset()
register_all_fashiondet()

__all__ = ["get_data_root", "register_all_fashiondet", "register_fashiondet"]

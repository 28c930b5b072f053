# FashionDet, the built-in dataset (python tools/make_fashiondet.py), at its native 256 px.
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import (
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from omegaconf import OmegaConf

from dicod_d2.evaluation import COCOEvaluator

#: SSD's expand (zoom-out) ratio on FashionDet, for the SSD students (configs/fashiondet/ssd/) and
#: their "ssd" teacher's crops alike: 1, no expand step. FashionDet's objects are already small
#: (12-190 px in 256 px images); SSD's ×4 zoom-out would shrink the smallest to ~3 px, far below
#: SSD300's smallest default box (21 px). On val, 1000 iterations: 0.5 AP without it, 0.4 with it.
SSD_EXPAND_MAX_FASHIONDET = 1.0

dataloader = OmegaConf.create()
dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="fashiondet_train"),
    mapper=L(DatasetMapper)(
        is_train=True,
        augmentations=[L(T.RandomFlip)(horizontal=True)],
        image_format="BGR",
    ),
    total_batch_size=8,
    num_workers=1,
)
dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="fashiondet_val", filter_empty=False),
    mapper=L(DatasetMapper)(
        is_train=False, augmentations=[], image_format="${...train.mapper.image_format}"
    ),
    num_workers=1,
)
dataloader.evaluator = L(COCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${train.output_dir}",
)

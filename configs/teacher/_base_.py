# Shared pieces of every teacher config (tools/train_teacher.py): the crop classifier, Adam, and
# the hook that writes <train.output_dir>/teacher.pth at the end of training.
#
# Optimizer: the paper gives lr 1e-4, /10 at epoch 50 of 90, but no optimizer. 1e-4 is Adam's usual
# rate for fine-tuning an ImageNet ResNet (SGD at 1e-4 would barely move it in 90 epochs), so we
# use Adam (betas 0.9/0.999, no weight decay, no warm-up); change `optimizer` to try another.
import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

from dicod_d2.data.datasets import thing_classes
from dicod_d2.engine.teacher_export import TeacherExportHook
from dicod_d2.modeling.classification import CropClassifier

from ..common.train import train

model = L(CropClassifier)(
    arch="resnet50",
    class_names=L(thing_classes)(dataset_name="${dataloader.train.dataset.names}"),
    input_size=112,
    init_weights=None,
    losses=["ce", "focal"],
    focal_alpha=0.25,
    focal_gamma=2.0,
    pixel_mean=None,  # None: the init weights' own (ImageNet for torchvision files and scratch)
    pixel_std=None,
    channel_order="RGB",
    input_format="${dataloader.train.mapper.image_format}",
)

optimizer = L(torch.optim.Adam)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.0,
)

train.extra_hooks = [
    L(TeacherExportHook)(
        output_path="${train.output_dir}/teacher.pth",
        recipe=dict(
            augmentation="general",
            losses="${model.losses}",
            init_weights="${model.init_weights}",
            train_dataset="${dataloader.train.dataset.names}",
            val_dataset="${dataloader.test.dataset.names}",
            optimizer="Adam",
            lr="${optimizer.lr}",
            batch_images="${dataloader.train.total_batch_size}",
        ),
    )
]

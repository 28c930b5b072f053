# COCO baseline: SSD512-VGG16, 24 epochs over COCO repeated 5x (lr ÷10 at 16 and 22), batch 64,
# lr 2e-3, weight decay 5e-4, SSD's augmentation at 512² (RGB),
# VGG16 ImageNet weights from a local torchvision file (projects/DICOD/README.md).
from ...common.data.coco import dataloader
from ...common.data.ssd import ssd_dataloader
from ...common.models.ssd import model_512 as model
from ...common.optim import SSD_SGD as optimizer
from ...common.recipes import coco_recipe
from ...common.train import train

model.backbone.weights = "weights/vgg16-397923af.pth"  # torchvision vgg16 IMAGENET1K_V1
dataloader = ssd_dataloader(dataloader)
lr_multiplier = coco_recipe(
    model,
    dataloader,
    optimizer,
    train,
    name="ssd512",
    repeat=5,
    epochs=24,
    steps=(16, 22),
    batch_size=64,
    lr=2e-3,
)

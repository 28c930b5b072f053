# COCO baseline: Faster R-CNN QR50-FPN, 4x schedule (48 epochs, lr ÷10 at 32 and 44: the 1x steps ×4), batch 32, lr 0.04.
from ...common.data.coco import dataloader
from ...common.models.faster_rcnn_qr50_fpn import model
from ...common.optim import SGD as optimizer
from ...common.recipes import coco_recipe
from ...common.train import train

lr_multiplier = coco_recipe(
    model,
    dataloader,
    optimizer,
    train,
    name="faster_rcnn_qr50_4x",
    epochs=48,
    steps=(32, 44),
    batch_size=32,
    lr=0.04,
)

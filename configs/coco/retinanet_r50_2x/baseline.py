# COCO baseline: RetinaNet R50-FPN, 2x schedule (24 epochs, lr ÷10 at 16 and 22), batch 16, lr 0.01.
from ...common.data.coco import dataloader
from ...common.models.retinanet import model
from ...common.optim import SGD as optimizer
from ...common.recipes import coco_recipe
from ...common.train import train

lr_multiplier = coco_recipe(
    model,
    dataloader,
    optimizer,
    train,
    name="retinanet_r50_2x",
    epochs=24,
    steps=(16, 22),
    batch_size=16,
    lr=0.01,
)

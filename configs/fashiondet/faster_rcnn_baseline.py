# Baseline Faster R-CNN student on FashionDet (trains on a CPU in minutes).
from ..common.data.fashiondet import dataloader
from ..common.models.faster_rcnn_fashiondet import model
from ..common.optim import SGD as optimizer
from ..common.schedule import multistep
from ..common.train import train

train.max_iter = 1000
train.eval_period = 1000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/faster_rcnn_baseline"
optimizer.lr = 0.02
lr_multiplier = multistep(train.max_iter, steps=(750, 900), warmup_iters=100)

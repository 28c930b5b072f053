# RetinaNet student on FashionDet: half-width ResNet-18 FPN p3..p7 with BN, from scratch
# (configs/common/models/retinanet_fashiondet.py); trains on a CPU in minutes.
from ...common.data.fashiondet import dataloader
from ...common.models.retinanet_fashiondet import model
from ...common.optim import SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

train.max_iter = 1000
train.eval_period = 1000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/retinanet_baseline"
optimizer.lr = 0.01
lr_multiplier = multistep(train.max_iter, steps=(750, 900), warmup_iters=100)

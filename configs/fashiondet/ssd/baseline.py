# SSD300 student on FashionDet: VGG16 x0.25 with BN, from scratch (configs/common/models/
# ssd_fashiondet.py), SSD's augmentation at 300² (RGB); trains on a CPU (about 3 s per iteration
# of 8 images on two cores). SSD's lr 2e-3 (its losses are sums over the batch ÷ positives): 1e-2
# makes the first iterations oscillate.
from ...common.data.fashiondet import dataloader
from ...common.data.ssd import ssd_dataloader
from ...common.models.ssd_fashiondet import model
from ...common.optim import SSD_SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

dataloader = ssd_dataloader(dataloader)
train.max_iter = 1000
train.eval_period = 1000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/ssd_baseline"
optimizer.lr = 2e-3
lr_multiplier = multistep(train.max_iter, steps=(750, 900), warmup_iters=100)

# SSD300 student on FashionDet: VGG16 x0.25 with BN, from scratch (configs/common/models/
# ssd_fashiondet.py), SSD's augmentation at 300² (RGB) without the expand step
# (SSD_EXPAND_MAX_FASHIONDET); trains on a CPU (about 2 s per iteration of 8 images on one core).
# SSD's lr 2e-3 (its losses are sums over the batch ÷ positives): 1e-2 diverges, 2e-2 with the
# gradient clipped at 10 trains far slower. 2000 iterations: from scratch, SSD is still learning to
# classify at 1000 (0.5 AP on val there).
from ...common.data.fashiondet import SSD_EXPAND_MAX_FASHIONDET, dataloader
from ...common.data.ssd import ssd_dataloader
from ...common.models.ssd_fashiondet import model
from ...common.optim import SSD_SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

dataloader = ssd_dataloader(dataloader, SSD_EXPAND_MAX_FASHIONDET)
train.max_iter = 2000
train.eval_period = 2000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/ssd_baseline"
optimizer.lr = 2e-3
lr_multiplier = multistep(train.max_iter, steps=(1500, 1800), warmup_iters=100)

# RetinaNet student on FashionDet: half-width ResNet-18 FPN p3..p7 with BN, from scratch
# (configs/common/models/retinanet_fashiondet.py); trains on a CPU in 30-45 minutes.
from dicod_d2.solver import SGDClipGradNorm

from ...common.data.fashiondet import dataloader
from ...common.models.retinanet_fashiondet import model
from ...common.optim import SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

train.max_iter = 2000
train.eval_period = 2000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/retinanet_baseline"
# Chosen on FashionDet val (baseline, seed 0, 1000 iterations): lr 0.01 without clipping 3.2 AP (the
# focal loss stays flat for 400 iterations); lr 0.02 with the global gradient norm clipped at 10, as
# the Faster R-CNN student, 6.5 AP; the same plus BatchNorm in the head 5.4 AP. Then 2000 iterations
# (lr ÷10 at 1500 and 1800, as SSD's schedule): 19.0 AP (baseline, seed 0, val), the focal loss was
# still falling at 1000.
optimizer.lr = 0.02
optimizer._target_ = SGDClipGradNorm
optimizer.max_grad_norm = 10.0
lr_multiplier = multistep(train.max_iter, steps=(1500, 1800), warmup_iters=100)

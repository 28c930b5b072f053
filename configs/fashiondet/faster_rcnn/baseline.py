# Baseline Faster R-CNN student on FashionDet (trains on a CPU in minutes): 600 iterations at batch 8
# (about 2 epochs of the 2500-image demo split), the length the 20-minute demo affords on 2 cores.
from dicod_d2.solver import SGDClipGradNorm

from ...common.data.fashiondet import dataloader
from ...common.models.faster_rcnn_fashiondet import model
from ...common.optim import SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

train.max_iter = 600
train.eval_period = 600
train.checkpointer.period = 300
train.output_dir = "./output/fashiondet/faster_rcnn_baseline"
optimizer.lr = 0.02
# From scratch with BN at lr 0.02 a short warm-up can blow up (a 120-iteration +KD_cls run diverged
# at iteration 19): clip the global gradient norm, the same for the baseline and every variant.
optimizer._target_ = SGDClipGradNorm
optimizer.max_grad_norm = 10.0
lr_multiplier = multistep(train.max_iter, steps=(450, 540), warmup_iters=100)

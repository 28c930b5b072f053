# Faster R-CNN QR50-FPN student on FashionDet: ResNet50 with widths ÷ 4, BN, from scratch,
# 64-channel FPN (the light box head of faster_rcnn_fashiondet); trains on a CPU.
from detectron2.config import LazyCall as L

from dicod_d2.modeling.backbone import build_resnet_width_fpn_backbone

from ...common.data.fashiondet import dataloader
from ...common.models.faster_rcnn_fashiondet import model
from ...common.optim import SGD as optimizer
from ...common.schedule import multistep
from ...common.train import train

model.backbone = L(build_resnet_width_fpn_backbone)(
    depth=50, width_divisor=4, out_channels=64, norm="BN", freeze_at=0
)
train.max_iter = 1000
train.eval_period = 1000
train.checkpointer.period = 500
train.output_dir = "./output/fashiondet/faster_rcnn_qr50_baseline"
optimizer.lr = 0.02
lr_multiplier = multistep(train.max_iter, steps=(750, 900), warmup_iters=100)

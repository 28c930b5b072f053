# A compact Faster R-CNN that trains from scratch on a CPU: half-width ResNet-18 with BN, 64-channel
# FPN, a light box head. FashionDet images are 256 px with objects from ~12 to ~190 px.
from detectron2.config import LazyCall as L

from dicod_d2.modeling.backbone import build_resnet_width_fpn_backbone

from .faster_rcnn_fpn import model

model.backbone = L(build_resnet_width_fpn_backbone)(
    depth=18, width_divisor=2, out_channels=64, norm="BN", freeze_at=0
)
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.proposal_generator.batch_size_per_image = 128
model.proposal_generator.pre_nms_topk = (1000, 500)
model.proposal_generator.post_nms_topk = (500, 300)
model.roi_heads.num_classes = 10
model.roi_heads.batch_size_per_image = 128
model.roi_heads.box_head.fc_dims = [256, 256]

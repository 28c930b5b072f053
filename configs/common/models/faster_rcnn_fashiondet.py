# A compact Faster R-CNN that trains from scratch on a CPU: ResNet-18-style FPN backbone with BN,
# 64-channel FPN, a light box head. FashionDet images are 256 px with objects from ~8 to ~200 px.
from detectron2.config import LazyCall as L

from .faster_rcnn_fpn import model

model.backbone.bottom_up.stem.norm = "BN"
model.backbone.bottom_up.stages.depth = 18
model.backbone.bottom_up.stages.norm = "BN"
del model.backbone.bottom_up.stages.stride_in_1x1
model.backbone.out_channels = 64
model.backbone.norm = ""
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.proposal_generator.batch_size_per_image = 128
model.proposal_generator.pre_nms_topk = (1000, 500)
model.proposal_generator.post_nms_topk = (500, 300)
model.roi_heads.num_classes = 10
model.roi_heads.batch_size_per_image = 128
model.roi_heads.box_head.fc_dims = [256, 256]

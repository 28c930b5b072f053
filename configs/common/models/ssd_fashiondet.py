# A slim SSD300 that trains from scratch on a CPU: VGG16 with every width x 0.25 (the head follows)
# and BatchNorm after every convolution, 10 FashionDet classes. FashionDet's 256 px images are
# resized to 300² (configs/common/data/ssd.py); objects of ~12-190 px become ~14-220 px, inside the
# SSD300 default boxes' 21-300 px range. BatchNorm in training needs >= 2 images per device.
from .ssd import model

model.backbone.width = 0.25
model.backbone.norm = "BN"
model.num_classes = 10

# Demo teacher for the FashionDet SSD students: resnet_tiny, 56 px, CE, on crops under the SSD
# students' own augmentation (SSD300's, RGB, without the expand step: SSD_EXPAND_MAX_FASHIONDET).
from ...common.data.fashiondet import SSD_EXPAND_MAX_FASHIONDET
from ...common.data.object_crops import crop_dataloader, ssd_recipe
from ...common.models.ssd import model as _ssd_student
from .resnet_tiny_56_general_ce_fl import lr_multiplier, model, optimizer, train

dataloader = crop_dataloader(
    "fashiondet_train", "fashiondet_val", ssd_recipe(_ssd_student, SSD_EXPAND_MAX_FASHIONDET),
    image_format=_ssd_student.input_format, batch_size=16, num_workers=2,
)
model.losses = ["ce"]
train.extra_hooks[0].recipe.augmentation = "ssd"
train.output_dir = "./output/teacher/fashiondet/resnet_tiny_56_ssd_ce"

# ResNet50 teacher, 56 px, SSD300's augmentation (RGB, as the SSD students), CE (table S1).
from ...common.data.object_crops import crop_dataloader, ssd_recipe
from ...common.models.ssd import model as _ssd_student
from .resnet50_112_general_ce_fl import lr_multiplier, model, optimizer, train

dataloader = crop_dataloader("coco_2017_train", "coco_2017_val", ssd_recipe(_ssd_student),
                             image_format=_ssd_student.input_format, batch_size=32, num_workers=8)
model.input_size = 56
model.losses = ["ce"]
train.extra_hooks[0].recipe.augmentation = "ssd"
train.output_dir = "./output/teacher/coco/resnet50_56_ssd_ce"

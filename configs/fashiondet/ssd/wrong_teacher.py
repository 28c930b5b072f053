# Wrong-knowledge control, SSD: full DICOD with the same teacher, its class scores deranged (class i
# gets the score of class i-1). If the teacher's knowledge is what transfers, this must not beat
# no_teacher.
from ...common.models.ssd import LOC_PIX_SPACE
from ...common.recipes import FASHIONDET_SSD_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "wrong_teacher", FASHIONDET_SSD_TEACHER, loc_pix_space=LOC_PIX_SPACE)

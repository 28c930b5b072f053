# Wrong-knowledge control, RetinaNet: full DICOD with the same teacher, its class scores deranged (class
# i gets the score of class i-1). If the teacher's knowledge is what transfers, this must not beat
# no_teacher.
from ...common.recipes import FASHIONDET_TEACHER, dicod_variant
from .baseline import dataloader, lr_multiplier, model, optimizer, train

dicod_variant(model, train, "wrong_teacher", FASHIONDET_TEACHER)

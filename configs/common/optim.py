import copy

import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

# params.model is set to the model object by the training loop before instantiation
SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
)

# SSD (paper, Section 4.1; supplementary S3): SGD, momentum 0.9, weight decay 5e-4; the lr is set by the config's recipe
SSD_SGD = copy.deepcopy(SGD)
SSD_SGD.weight_decay = 5e-4

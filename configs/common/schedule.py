from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler


def multistep(max_iter: int, steps: tuple, warmup_iters: int = 1000, warmup_factor: float = 0.001):
    """LR multiplier: linear warm-up over ``warmup_iters``, then ÷10 at each of ``steps`` (iterations)."""
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[0.1**i for i in range(len(steps) + 1)],
            milestones=list(steps),
            num_updates=max_iter,
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_factor=warmup_factor,
    )


def coco_schedule(epochs: int, steps_epochs: tuple, batch_size: int, warmup_iters: int = 500,
                  images_per_epoch: int = 117266):
    """``(max_iter, lr_multiplier)`` of an epoch schedule on COCO train2017 (117,266 images with boxes)."""
    iters_per_epoch = images_per_epoch / batch_size
    max_iter = int(round(epochs * iters_per_epoch))
    steps = tuple(int(round(e * iters_per_epoch)) for e in steps_epochs)
    return max_iter, multistep(max_iter, steps, warmup_iters)

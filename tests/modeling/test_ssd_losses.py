"""SSD matching, hard negative mining and loss values on hand-made anchors, logits and boxes."""
import math

import torch
import torch.nn.functional as F
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from dicod_d2.modeling.backbone.vgg import VGG16SSD, vgg16_ssd_feature_shapes
from dicod_d2.modeling.meta_arch.ssd import SSD, SSDHead
from dicod_d2.modeling.ssd_anchors import SSDAnchorGenerator

C = 2  # foreground classes; background is class 2


def _ssd() -> SSD:
    return SSD(
        backbone=VGG16SSD(300, width=0.0625),
        head=SSDHead(input_shape=vgg16_ssd_feature_shapes(300, 0.0625), num_classes=C, num_anchors=[4, 6, 6, 6, 4, 4]),
        anchor_generator=SSDAnchorGenerator(
            input_size=300, strides=[8, 16, 32, 64, 100, 300], aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
            ratio_range=(0.15, 0.9), first_level_ratios=(0.07, 0.15),
        ),
        box2box_transform=Box2BoxTransform(weights=(10.0, 10.0, 5.0, 5.0)),
        num_classes=C,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
    )


def _gt(boxes, classes) -> Instances:
    inst = Instances((200, 200))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    return inst


def test_matching_iou_half_and_best_anchor_of_each_gt():
    """gt A = [0,0,10,10] (class 1), gt B = [0,0,10,30] (class 0).
    a0 = [0,0,10,12]: IoU 0.83 with A and 0.40 with B, but it is B's best anchor -> B (forced).
    a1 = [0,0,10,10]: IoU 1 with A -> A.   a2 = [0,4,10,9]: IoU exactly 0.5 with A -> A.
    a3 = [50,50,60,60]: no overlap -> background."""
    ssd = _ssd()
    anchors = [Boxes(torch.tensor([[0, 0, 10, 12], [0, 0, 10, 10], [0, 4, 10, 9], [50, 50, 60, 60]], dtype=torch.float32))]
    labels, matched = ssd.label_anchors(anchors, [_gt([[0, 0, 10, 10], [0, 0, 10, 30]], [1, 0]), _gt([], [])])
    assert labels[0].tolist() == [0, 1, 1, C]
    assert matched[0, :3].tolist() == [1, 0, 0]
    assert labels[1].tolist() == [C] * 4  # image without gt: all background


def test_gt_with_low_iou_still_gets_its_best_anchor():
    ssd = _ssd()
    anchors = [Boxes(torch.tensor([[50, 50, 60, 60], [0, 0, 10, 10]], dtype=torch.float32))]
    labels, matched = ssd.label_anchors(anchors, [_gt([[45, 45, 65, 65]], [1])])  # IoU 0.25
    assert labels[0].tolist() == [1, C] and matched[0, 0] == 0


def test_hard_negative_mining_and_loss_values_by_hand():
    """Image 0: gt0 = [0,0,10,10] (class 1), gt1 = [45,45,65,65] (class 0); 10 anchors:
    a0 = gt0 exactly (positive), a1 = [50,50,60,60] (gt1's best anchor, IoU 0.25: positive),
    a2..a9 background far away. P = 2 -> keep 3*2 = 6 of the 8 negatives, the hardest.
    Image 1: no gt -> keeps 3 (as if P = 1) of its 10 negatives."""
    ssd = _ssd()
    far = [[100 + 10 * k, 150, 108 + 10 * k, 158] for k in range(8)]
    anchor_t = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60], *far], dtype=torch.float32)
    # two levels, to exercise the concatenation
    anchors = [Boxes(anchor_t[:4]), Boxes(anchor_t[4:])]
    gts = [_gt([[0, 0, 10, 10], [45, 45, 65, 65]], [1, 0]), _gt([], [])]
    labels, matched = ssd.label_anchors(anchors, gts)
    assert labels[0].tolist() == [1, 0] + [C] * 8

    # background logit b: the smaller b, the harder the negative. Image 0 anchors 2..9 get
    # b = 0.8, 0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4 -> the two easiest are anchors 6 (0.9) and 2 (0.8).
    logits = torch.zeros(2, 10, C + 1)
    logits[0, 2:, C] = torch.tensor([0.8, 0.1, 0.5, 0.3, 0.9, 0.2, 0.7, 0.4])
    logits[0, 0] = torch.tensor([0.0, 2.0, 0.0])
    logits[0, 1] = torch.tensor([1.0, 0.0, 0.5])
    logits[1, :, C] = torch.linspace(0.0, 0.9, 10)  # image 1: hardest are anchors 0, 1, 2
    logits.requires_grad_()
    deltas = torch.zeros(2, 10, 4, requires_grad=True)

    mask = ssd.hard_negatives(torch.zeros(2, 10), labels)  # shapes only; real CE below
    assert mask.sum(dim=1).tolist() == [6, 3]

    with EventStorage():
        losses = ssd.losses(anchors, [logits[:, :4], logits[:, 4:]], [deltas[:, :4], deltas[:, 4:]], labels, matched, gts)

    def ce(img, anchor, target):
        return -F.log_softmax(logits[img, anchor].detach(), dim=0)[target].item()

    kept_neg_0 = [3, 4, 5, 7, 8, 9]
    expected_cls = ce(0, 0, 1) + ce(0, 1, 0) + sum(ce(0, a, C) for a in kept_neg_0) + sum(ce(1, a, C) for a in [0, 1, 2])
    assert math.isclose(losses["loss_cls"].item(), expected_cls / 2, rel_tol=1e-5)
    # box: a0 == gt0 -> zero deltas; a1 (centre 55, side 10) -> gt1 (centre 55, side 20):
    # dw = dh = 5 * log 2, smooth-L1 (beta 1) = |x| - 0.5 each; normalised by P = 2
    assert math.isclose(losses["loss_box_reg"].item(), 2 * (5 * math.log(2) - 0.5) / 2, rel_tol=1e-5)

    sum(losses.values()).backward()
    grad_rows = logits.grad.abs().sum(dim=-1) > 0
    assert grad_rows[0].tolist() == [True, True, False, True, True, True, False, True, True, True]
    assert grad_rows[1].tolist() == [True] * 3 + [False] * 7


def test_batch_without_any_gt_is_finite():
    ssd = _ssd()
    anchors = [Boxes(torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40]], dtype=torch.float32))]
    gts = [_gt([], []), _gt([], [])]
    labels, matched = ssd.label_anchors(anchors, gts)
    logits = torch.randn(2, 2, C + 1, requires_grad=True)
    deltas = torch.randn(2, 2, 4, requires_grad=True)
    with EventStorage():
        losses = ssd.losses(anchors, [logits], [deltas], labels, matched, gts)
    assert losses["loss_box_reg"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(deltas.grad).all()

"""SSD end to end from the LazyConfig: training steps, inference, empty ground truth, DICOD hook."""
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torchvision.ops import box_iou

import dicod_d2  # noqa: F401
from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.teacher import FrozenTeacher, TeacherMeta, build_classifier
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "common" / "models" / "ssd.py"
CLASSES = ["shirt", "shoe", "bag"]


def _slim_ssd(key: str = "model", **overrides):
    cfg = LazyConfig.load(str(CONFIG))[key]
    cfg.backbone.width = 0.125
    cfg.backbone.norm = "BN"
    cfg.num_classes = len(CLASSES)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    return instantiate(cfg)


def _input(boxes, classes, size=300, seed=0, out_hw=None):
    g = torch.Generator().manual_seed(seed)
    inst = Instances((size, size))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    image = torch.rand(3, size, size, generator=g) * 60
    for (x0, y0, x1, y1), c in zip(boxes, classes, strict=True):  # bright, class-coloured objects
        image[c, int(y0) : int(y1), int(x0) : int(x1)] = 250
    d = {"image": image.to(torch.uint8), "instances": inst}
    if out_hw:
        d["height"], d["width"] = out_hw
    return d


def _batch():
    return [
        _input([[20, 30, 120, 150], [160, 170, 280, 260]], [0, 2], seed=1),
        _input([[60, 40, 200, 110]], [1], seed=2),
    ]


def test_config_builds_ssd300_and_ssd512():
    for key, levels, total in (("model", 6, 8732), ("model_512", 7, 24564)):
        ssd = _slim_ssd(key).eval()  # BatchNorm cannot train on one 1x1 map
        size = ssd.backbone.size
        feats = ssd.backbone(torch.zeros(1, 3, size, size))
        anchors = ssd.anchor_generator([feats[f] for f in ssd.head_in_features])
        assert len(anchors) == levels and sum(len(a) for a in anchors) == total
        assert ssd.input_format == "RGB" and ssd.head.num_classes == len(CLASSES)


def test_few_training_steps_reduce_the_loss_and_inference_is_rescaled():
    torch.set_num_threads(1)
    ssd = _slim_ssd()
    batch = _batch()
    opt = torch.optim.SGD(ssd.parameters(), lr=0.005, momentum=0.9)
    totals = []
    with EventStorage():
        for _ in range(6):
            losses = ssd(batch)
            assert set(losses) == {"loss_cls", "loss_box_reg"}
            assert all(torch.isfinite(v) for v in losses.values())
            total = sum(losses.values())
            opt.zero_grad()
            total.backward()
            opt.step()
            totals.append(total.item())
    assert totals[-1] < totals[0]

    ssd.eval()
    ssd.test_score_thresh = 0.0
    with torch.no_grad():
        small = ssd([_input([], [], seed=1, out_hw=(300, 300))])[0]["instances"]
        big = ssd([_input([], [], seed=1, out_hw=(600, 450))])[0]["instances"]
    assert 0 < len(small) <= 200 and big.image_size == (600, 450)
    assert small.scores.min() >= 0 and small.scores.max() <= 1
    assert int(small.pred_classes.max()) < len(CLASSES)
    b = big.pred_boxes.tensor
    assert (b[:, 0::2] <= 450).all() and (b[:, 1::2] <= 600).all()
    scale = torch.tensor([1.5, 2.0, 1.5, 2.0])
    torch.testing.assert_close(b, small.pred_boxes.tensor * scale)


def test_inference_cap_threshold_and_nms():
    ssd = _slim_ssd().eval()
    image = _input([], [], seed=3)
    with torch.no_grad():
        ssd.test_score_thresh = 0.0  # keep every candidate: the 200-per-image cap must bite
        assert len(ssd([image])[0]["instances"]) == 200
        ssd.test_score_thresh = 0.02
        inst = ssd([image])[0]["instances"]
    assert 0 < len(inst) <= 200 and (inst.scores > 0.02).all()
    boxes = inst.pred_boxes.tensor
    interior = (boxes[:, :2] > 0).all(dim=1) & (boxes[:, 2:] < 300).all(dim=1)  # not clipped
    for c in inst.pred_classes.unique():
        b = boxes[(inst.pred_classes == c) & interior]
        iou = box_iou(b, b).fill_diagonal_(0)
        assert (iou <= 0.45 + 1e-4).all()


def test_empty_ground_truth_images_train_without_nan():
    ssd = _slim_ssd()
    with EventStorage():
        for batch in ([_input([], []), _input([[50, 50, 150, 150]], [1])], [_input([], []), _input([], [], seed=5)]):
            losses = ssd(batch)
            assert all(torch.isfinite(v) for v in losses.values())
            sum(losses.values()).backward()
            assert all(torch.isfinite(p.grad).all() for p in ssd.parameters() if p.grad is not None)
            ssd.zero_grad()


def test_training_without_instances_is_explained():
    ssd = _slim_ssd()
    with pytest.raises(ValueError, match="instances"):
        ssd([{"image": torch.zeros(3, 300, 300, dtype=torch.uint8)}])


@pytest.fixture(scope="module")
def distiller():
    torch.manual_seed(0)
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=len(CLASSES), class_names=CLASSES, input_size=16, channel_order="RGB",
        pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    teacher = FrozenTeacher(build_classifier("resnet_tiny", len(CLASSES)), meta)
    return DICODDistiller(teacher, input_format="RGB", class_names=CLASSES)


def test_dicod_losses_on_positive_anchors(distiller):
    ssd = _slim_ssd(distiller=distiller)
    assert not any("teacher" in k for k in ssd.state_dict())
    with EventStorage():
        losses = ssd(_batch())
        assert set(losses) == {"loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
        assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values())
        # the localisation terms reach the box branch through the decoded predicted boxes,
        # KD_cls reaches the class branch
        box_params = list(ssd.head.bbox_pred.parameters())
        loc = torch.autograd.grad(losses["loss_loc_pix"] + losses["loss_kd_loc"], box_params, retain_graph=True)
        assert all(torch.isfinite(g).all() for g in loc) and sum(g.abs().sum() for g in loc) > 0
        cls_params = list(ssd.head.cls_score.parameters())
        kd = torch.autograd.grad(losses["loss_kd_cls"], cls_params, retain_graph=True)
        assert sum(g.abs().sum() for g in kd) > 0
        # a batch without ground truth: distillation terms are zero, not NaN
        empty = ssd([_input([], []), _input([], [], seed=4)])
        assert all(empty[k].item() == 0.0 for k in ("loss_kd_cls", "loss_loc_pix", "loss_kd_loc"))
    assert all(not p.requires_grad and p.grad is None for p in distiller.teacher.model.parameters())


def test_distiller_channel_order_must_match(distiller):
    with pytest.raises(ValueError, match="input_format"):
        _slim_ssd(distiller=distiller, input_format="BGR")

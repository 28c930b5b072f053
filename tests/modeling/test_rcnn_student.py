"""The DICOD Faster R-CNN student: losses per variant, positives, gradients, edge cases, inference."""
import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES
from detectron2.config import instantiate
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

import dicod_d2.data  # noqa: F401  registers FashionDet (its class names)
from dicod_d2.config.lazy import load_config
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
from dicod_d2.errors import ConfigError
from dicod_d2.layers import crop_boxes_roi_align
from dicod_d2.losses import kd_cls_softmax
from dicod_d2.modeling import DICODGeneralizedRCNN
from dicod_d2.modeling.distiller import DetectorNormalizer, raw_images
from dicod_d2.teacher import TeacherFileError, write_random_teacher

BASE_LOSSES = {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
VARIANT_LOSSES = {
    "kd_cls": {"loss_kd_cls"},
    "loc": {"loss_loc_pix"},
    "loc_kd_loc": {"loss_loc_pix", "loss_kd_loc"},
    "dicod": {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"},
}
KD_LOSSES = VARIANT_LOSSES["dicod"]
CROP = 32  # teacher input size: small crops keep the tests fast


def write_teacher_file(path, class_names=FASHION_MNIST_CLASSES, seed=0):
    """A random-weight "resnet_tiny" teacher file for ``class_names`` (CROP px, RGB); returns str(path)."""
    return write_random_teacher(path, class_names, input_size=CROP, seed=seed)


def student_config(variant, teacher_path, *overrides):
    """The FashionDet config ``faster_rcnn_<variant>.py`` (tiny data), teacher at ``teacher_path``."""
    teacher = [] if variant == "baseline" else [f"model.distiller.teacher.path={teacher_path}"]
    return load_config(str(REPO / f"configs/fashiondet/faster_rcnn/{variant}.py"),
                       [*TINY_OVERRIDES, *teacher, *overrides])


def build(cfg, seed=0):
    torch.manual_seed(seed)
    return instantiate(cfg.model).train()


def image_input(h, w, boxes, classes, seed=0, proposals=None):
    """One detectron2 training input: random BGR image [3,h,w] 0..255, gt boxes XYXY pixels."""
    g = torch.Generator().manual_seed(seed)
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    out = {"image": torch.randint(0, 256, (3, h, w), generator=g).float(), "instances": inst,
           "height": h, "width": w}
    if proposals is not None:
        p = Instances((h, w))
        p.proposal_boxes = Boxes(torch.tensor(proposals, dtype=torch.float32).reshape(-1, 4))
        p.objectness_logits = torch.zeros(len(p))
        out["proposals"] = p
    return out


def two_images():
    return [image_input(96, 128, [[10, 10, 50, 60], [60, 20, 120, 90]], [1, 3], seed=1),
            image_input(96, 100, [[5, 8, 70, 90]], [9], seed=2)]


def train_step(model, batch):
    with EventStorage():
        return model(batch)


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return write_teacher_file(tmp_path_factory.mktemp("teacher") / "teacher.pth")


def _assert_teacher_untouched(model):
    teacher = model.distiller.teacher.model
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("variant", sorted(VARIANT_LOSSES))
def test_each_variant_adds_exactly_its_losses(variant, teacher_path):
    model = build(student_config(variant, teacher_path))
    assert isinstance(model, DICODGeneralizedRCNN)
    losses = train_step(model, two_images())
    assert set(losses) == BASE_LOSSES | VARIANT_LOSSES[variant]
    for name in VARIANT_LOSSES[variant]:
        assert torch.isfinite(losses[name]) and losses[name] > 0, name
    sum(losses.values()).backward()
    _assert_teacher_untouched(model)


def test_kd_loc_alone_moves_the_box_regression_only(teacher_path):
    model = build(student_config("loc_kd_loc", teacher_path))
    losses = train_step(model, two_images())
    losses["loss_kd_loc"].backward()
    predictor = model.roi_heads.box_predictor
    assert predictor.bbox_pred.weight.grad.abs().sum() > 0
    assert predictor.cls_score.weight.grad is None  # KD_loc reaches the box only through its deltas
    _assert_teacher_untouched(model)


def test_positives_and_kd_cls_match_a_reference_computed_by_hand(teacher_path):
    """Given proposals (no RPN) make the positives known: each gt (appended by the ROI heads) plus
    one proposal overlapping a gt; the far proposal is background."""
    cfg = student_config("dicod", teacher_path)
    cfg.model.proposal_generator = None
    model = build(cfg)
    gts = [[[8, 8, 40, 56], [50, 30, 120, 90]], [[5, 5, 60, 70]]]
    batch = [
        image_input(96, 128, gts[0], [2, 7], seed=3, proposals=[[10, 9, 41, 58], [90, 0, 127, 18]]),
        image_input(80, 96, gts[1], [4], seed=4, proposals=[[6, 4, 62, 70]]),
    ]
    losses = train_step(model, batch)

    # reference: positives (image, gt index, proposal box) listed by hand
    pos = [(0, 0, gts[0][0]), (0, 1, gts[0][1]), (0, 0, [10, 9, 41, 58]), (1, 0, gts[1][0]),
           (1, 0, [6, 4, 62, 70])]
    image_index = torch.tensor([p[0] for p in pos])
    gt_index = torch.tensor([p[1] for p in pos])
    classes = torch.stack([batch[i]["instances"].gt_classes[j] for i, j, _ in pos])
    heads = model.roi_heads
    with torch.no_grad(), EventStorage():
        images = model.preprocess_image(batch)
        feats = model.backbone(images.tensor)
        per_image = [Boxes(torch.tensor([p[2] for p in pos if p[0] == i], dtype=torch.float32))
                     for i in range(2)]
        box_feats = heads.box_pooler([feats[f] for f in heads.box_in_features], per_image)
        logits, deltas = heads.box_predictor(heads.box_head(box_feats))
        deltas = deltas.view(len(pos), -1, 4)[torch.arange(len(pos)), classes]
        pred_boxes = heads.box_predictor.box2box_transform.apply_deltas(
            deltas, torch.cat([b.tensor for b in per_image]))
        raw = raw_images(batch, model.backbone.size_divisibility)
        gt_boxes = [x["instances"].gt_boxes.tensor for x in batch]
        teacher = model.distiller.teacher
        teacher_logits = torch.cat([
            teacher.logits(teacher.normalize(
                crop_boxes_roi_align(raw[i : i + 1], gt_boxes[i][j : j + 1], torch.tensor([0]), CROP), "BGR"))
            for i, j, _ in pos
        ])
        # detectron2's box head averages loss_cls / loss_box_reg over every sampled RoI: here every
        # proposal and every gt (appended as a proposal) is sampled
        num_sampled = sum(len(x["proposals"]) + len(x["instances"]) for x in batch)
        expected = model.distiller.losses(raw, gt_boxes, logits, image_index, gt_index, pred_boxes, "softmax",
                                          detector_normalizer=DetectorNormalizer(num_sampled, num_sampled))
    assert num_sampled == 6 and len(pos) == 5
    weight = model.distiller.kd_cls_weight  # the config's λ_cls
    # the logged term x its normaliser = λ_cls x the sum of KD_cls over the positives
    kd_sum = kd_cls_softmax(logits, teacher_logits, 2.0)  # a sum over the positives
    torch.testing.assert_close(losses["loss_kd_cls"] * num_sampled, weight * kd_sum)
    for name in KD_LOSSES:  # same positives, logits and decoded boxes as the hand-made list
        torch.testing.assert_close(losses[name], expected[name])


def _far_outside(model):
    """Box-regression bias that moves every predicted box 4 widths/heights right and down."""
    with torch.no_grad():
        bias = model.roi_heads.box_predictor.bbox_pred.bias.view(-1, 4)
        bias[:, :2] = 40.0  # dx, dy with Box2BoxTransform weights (10, 10, 5, 5)


EDGE_CASES = {
    # name: (batch, extra overrides, model change, whether the KD terms must be exactly 0)
    "image_without_gt": (lambda: [image_input(96, 128, [[10, 10, 50, 60]], [0]),
                                  image_input(96, 128, [], [], seed=1)], [], None, False),
    "no_gt_in_batch": (lambda: [image_input(96, 128, [], []), image_input(64, 80, [], [], seed=1)],
                       [], None, True),
    "border_and_tiny_boxes": (lambda: [image_input(96, 128, [[0, 0, 128, 96], [0, 0, 1, 1],
                                                             [120, 90, 128, 96]], [0, 1, 2]),
                                       image_input(64, 80, [[79, 0, 80, 64]], [5], seed=1)], [], None, False),
    # without the gt appended to the proposals, no proposal of ≥16 px reaches IoU 0.5 with a 2 px box
    "no_positive_proposal": (lambda: [image_input(96, 128, [[30, 30, 32, 32]], [0]),
                                      image_input(96, 128, [[60, 2, 62, 4]], [3], seed=1)],
                             ["+model.roi_heads.proposal_append_gt=False"], None, True),
    "pred_boxes_far_outside": (two_images, [], _far_outside, False),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_train_without_nan(case, teacher_path):
    make_batch, overrides, change, kd_zero = EDGE_CASES[case]
    model = build(student_config("dicod", teacher_path, *overrides))
    if change is not None:
        change(model)
    losses = train_step(model, make_batch())
    assert set(losses) == BASE_LOSSES | KD_LOSSES
    assert all(torch.isfinite(v) for v in losses.values()), losses
    for name in KD_LOSSES:
        assert (losses[name] == 0) if kd_zero else (losses[name] > 0), (name, losses[name])
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    _assert_teacher_untouched(model)


def test_inference_equals_baseline_and_never_uses_the_teacher(teacher_path):
    baseline = build(student_config("baseline", None))
    student = build(student_config("dicod", teacher_path), seed=1)
    assert type(baseline) is GeneralizedRCNN
    assert student.state_dict().keys() == baseline.state_dict().keys()
    student.load_state_dict(baseline.state_dict(), strict=True)
    calls = []
    student.distiller.teacher.model.register_forward_hook(lambda *a: calls.append(1))
    batch = [{k: v for k, v in x.items() if k != "instances"} for x in two_images()]
    with torch.no_grad():
        expected = baseline.eval()(batch)
        got = student.eval()(batch)
    assert not calls
    assert sum(len(x["instances"]) for x in expected) > 0
    for e, g in zip(expected, got, strict=True):
        e, g = e["instances"], g["instances"]
        assert torch.equal(e.pred_boxes.tensor, g.pred_boxes.tensor)
        assert torch.equal(e.scores, g.scores) and torch.equal(e.pred_classes, g.pred_classes)


def test_without_distiller_it_is_generalized_rcnn(teacher_path):
    cfg = student_config("dicod", teacher_path)
    cfg.model.distiller = None
    plain_cfg = student_config("baseline", None)
    student, plain = build(cfg), build(plain_cfg)
    student.load_state_dict(plain.state_dict(), strict=True)
    torch.manual_seed(5)
    got = train_step(student, two_images())
    torch.manual_seed(5)
    expected = train_step(plain, two_images())
    assert got.keys() == expected.keys() == BASE_LOSSES
    for k in expected:
        torch.testing.assert_close(got[k], expected[k])


def test_class_name_mismatch_stops_at_instantiation(tmp_path):
    other = write_teacher_file(tmp_path / "other.pth", [f"class{i}" for i in range(10)])
    with pytest.raises(ValueError, match="teacher classes .* do not match"):
        build(student_config("dicod", other))


def test_wrong_teacher_files_stop_with_clear_messages(tmp_path, teacher_path):
    plain = tmp_path / "state_dict.pth"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(TeacherFileError, match="not a dicod_d2 teacher file"):
        build(student_config("dicod", plain))
    truncated = tmp_path / "truncated.pth"
    data = open(teacher_path, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TeacherFileError, match="truncated"):
        build(student_config("dicod", truncated))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(student_config("dicod", tmp_path / "missing.pth"))


def test_bad_model_settings_are_rejected(teacher_path):
    cfg = student_config("dicod", teacher_path)
    cfg.model.roi_heads._target_ = "detectron2.modeling.roi_heads.StandardROIHeads"
    with pytest.raises(ConfigError, match="DICODROIHeads"):
        build(cfg)
    cfg = student_config("dicod", teacher_path, "model.distiller.input_format=RGB")
    with pytest.raises(ConfigError, match="model.distiller.input_format='RGB' but the model reads 'BGR'"):
        build(cfg)
    cfg = student_config("dicod", teacher_path, "+model.roi_heads.train_on_pred_boxes=True")
    with pytest.raises(ConfigError, match="model.roi_heads.train_on_pred_boxes=True is not supported"):
        build(cfg)

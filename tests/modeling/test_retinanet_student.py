"""DICODRetinaNet: DICOD losses on positive anchors, RetinaNet's own losses, inference and checkpoint keys."""
import copy

import pytest
import torch
from _helpers import REPO
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.meta_arch import RetinaNet
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from dicod_d2.layers import crop_boxes_roi_align
from dicod_d2.losses import kd_cls_sigmoid
from dicod_d2.modeling.distiller import DetectorNormalizer, DICODDistiller, raw_images
from dicod_d2.modeling.meta_arch.retinanet import DICODRetinaNet, matched_gt_index
from dicod_d2.teacher import FrozenTeacher, TeacherMeta, build_classifier, write_random_teacher
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

CLASSES = ["cat", "dog", "bird"]
CROP = 16


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    model = build_classifier("resnet_tiny", len(CLASSES))
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=len(CLASSES), class_names=CLASSES, input_size=CROP,
        channel_order="RGB", pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    return FrozenTeacher(model, meta)


@pytest.fixture(scope="module")
def model_cfg():
    """The FashionDet RetinaNet config's model (half-width R18-FPN, BN) with 3 classes."""
    cfg = LazyConfig.load(str(REPO / "configs/common/models/retinanet_fashiondet.py")).model
    cfg.num_classes = len(CLASSES)
    return cfg


def _build(model_cfg, cls, distiller=None, seed=0):
    torch.manual_seed(seed)
    cfg = copy.deepcopy(model_cfg)
    cfg._target_ = cls
    if cls is DICODRetinaNet:
        cfg.distiller = distiller
    return instantiate(cfg)


def _inputs(boxes_per_image, seed=0):
    """BGR images of 96x112 (padded to 128x128 by the FPN) with the given gt boxes (XYXY px)."""
    g = torch.Generator().manual_seed(seed)
    batch = []
    for boxes in boxes_per_image:
        inst = Instances((96, 112))
        inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.gt_classes = torch.randint(0, len(CLASSES), (len(boxes),), generator=g)
        image = (torch.rand(3, 96, 112, generator=g) * 255).to(torch.uint8)
        batch.append({"image": image, "instances": inst, "height": 96, "width": 112})
    return batch


BOXES = [[[4.0, 6.0, 40.0, 50.0], [50.0, 20.0, 100.0, 90.0]], [[10.0, 10.0, 70.0, 60.0]]]


def _losses(model, batch):
    with EventStorage():
        return model(batch)


def _reference_positives(model, batch):
    """Independent re-derivation: every positive anchor's (image, gt index, logits, decoded box)."""
    images = model.preprocess_image(batch)
    feats = model.backbone(images.tensor)
    feats = [feats[f] for f in model.head_in_features]
    logits, deltas = model._transpose_dense_predictions(model.head(feats), [model.num_classes, 4])
    logits, deltas = torch.cat(logits, 1), torch.cat(deltas, 1)
    anchors = Boxes.cat(model.anchor_generator(feats))
    rows = []
    for i, x in enumerate(batch):
        gt = x["instances"].gt_boxes
        if len(gt) == 0:
            continue
        matched, labels = model.anchor_matcher(pairwise_iou(gt, anchors))
        for a in torch.nonzero(labels == 1).flatten().tolist():
            box = model.box2box_transform.apply_deltas(deltas[i, a : a + 1], anchors.tensor[a : a + 1])
            rows.append((i, int(matched[a]), logits[i, a], box[0]))
    return rows


def test_losses_agree_with_core_functions(teacher, model_cfg):
    distiller = DICODDistiller(teacher, class_names=CLASSES, kd_cls_weight=0.4, loc_weight=0.15)
    student = _build(model_cfg, DICODRetinaNet, distiller).train()
    baseline = _build(model_cfg, RetinaNet).train()
    batch = _inputs(BOXES)
    got = _losses(student, batch)
    base = _losses(baseline, batch)
    assert set(got) == {"loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    for k in ("loss_cls", "loss_box_reg"):  # RetinaNet's own losses are untouched
        torch.testing.assert_close(got[k], base[k])

    rows = _reference_positives(student, batch)
    assert len(rows) > 3
    image_index = torch.tensor([r[0] for r in rows])
    gt_index = torch.tensor([r[1] for r in rows])
    logits = torch.stack([r[2] for r in rows])
    pred_boxes = torch.stack([r[3] for r in rows])
    images_raw = raw_images(batch, student.backbone.size_divisibility)
    gt_boxes = [x["instances"].gt_boxes.tensor for x in batch]
    # KD_cls against the loss function on per-positive teacher logits of its own gt crop
    teacher_logits = torch.cat([
        teacher.logits(teacher.normalize(
            crop_boxes_roi_align(images_raw[i : i + 1], gt_boxes[i][j : j + 1], torch.tensor([0]), CROP),
            "BGR",
        ))
        for i, j in zip(image_index.tolist(), gt_index.tolist(), strict=True)
    ])
    # RetinaNet divides its losses by a moving average of the positive anchors (start 100, momentum
    # 0.9): after one step 0.9 * 100 + 0.1 * K; the KD terms take the same normaliser
    norm = student.loss_normalizer
    assert norm == pytest.approx(0.9 * 100 + 0.1 * len(rows))
    kd_sum = kd_cls_sigmoid(logits, teacher_logits, 2.0)  # a sum over the positives
    torch.testing.assert_close(got["loss_kd_cls"] * norm, 0.4 * kd_sum)
    # loc terms: the distiller on the independently derived positives and decoded boxes
    ref = distiller.losses(images_raw, gt_boxes, logits, image_index, gt_index, pred_boxes, mode="sigmoid",
                           detector_normalizer=DetectorNormalizer(norm, norm))
    for k in ("loss_loc_pix", "loss_kd_loc"):
        assert ref[k] > 0
        torch.testing.assert_close(got[k], ref[k])


def test_kd_loc_gradient_reaches_box_branch_only(teacher, model_cfg):
    distiller = DICODDistiller(teacher, kd_cls=False, loc_pix=False, kd_loc=True)
    student = _build(model_cfg, DICODRetinaNet, distiller).train()
    losses = _losses(student, _inputs(BOXES))
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_kd_loc"}
    losses["loss_kd_loc"].backward()
    assert student.head.bbox_pred.weight.grad.abs().sum() > 0
    cls_grad = student.head.cls_score.weight.grad
    assert cls_grad is None or cls_grad.abs().sum() == 0
    assert all(p.grad is None for p in teacher.model.parameters())


@pytest.mark.parametrize("boxes", [[BOXES[0], []], [[], []]], ids=["half_empty", "empty"])
def test_images_without_objects(teacher, model_cfg, boxes):
    student = _build(model_cfg, DICODRetinaNet, DICODDistiller(teacher)).train()
    losses = _losses(student, _inputs(boxes))
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert all(torch.isfinite(v) for v in losses.values())
    if not any(boxes):
        assert all(losses[k] == 0 for k in ("loss_kd_cls", "loss_loc_pix", "loss_kd_loc"))
    sum(losses.values()).backward()
    assert student.head.cls_score.weight.grad is not None


def test_inference_and_checkpoint_equal_retinanet(teacher, model_cfg):
    student = _build(model_cfg, DICODRetinaNet, DICODDistiller(teacher), seed=1)
    baseline = _build(model_cfg, RetinaNet, seed=2)
    assert list(student.state_dict()) == list(baseline.state_dict())
    baseline.load_state_dict(student.state_dict(), strict=True)
    student.eval()
    baseline.eval()
    batch = [{"image": x["image"], "height": 192, "width": 224} for x in _inputs(BOXES)]
    student.head.cls_score.bias.data.fill_(0.0)  # scores near 0.5: many detections to compare
    baseline.head.cls_score.bias.data.fill_(0.0)
    with torch.no_grad():
        got, want = student(batch), baseline(batch)
    for g, w in zip(got, want, strict=True):
        g, w = g["instances"], w["instances"]
        assert len(g) > 0 and g.image_size == (192, 224)
        torch.testing.assert_close(g.pred_boxes.tensor, w.pred_boxes.tensor)
        torch.testing.assert_close(g.scores, w.scores)
        assert torch.equal(g.pred_classes, w.pred_classes)


def test_distiller_input_format_must_match(teacher, model_cfg):
    cfg = copy.deepcopy(model_cfg)
    cfg._target_ = DICODRetinaNet
    cfg.distiller = DICODDistiller(teacher, input_format="RGB")
    with pytest.raises(ValueError, match="input_format"):
        instantiate(cfg)


def test_matched_gt_index():
    gt = [torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5], [0, 0, 4, 4]]), torch.zeros(0, 4), torch.tensor([[2.0, 2, 9, 9]])]
    matched = torch.tensor([[1.0, 1, 5, 5], [0, 0, 4, 4], [2, 2, 9, 9]])
    image = torch.tensor([0, 0, 2])
    assert matched_gt_index(matched, image, gt).tolist() == [1, 0, 0]  # duplicate box: the first
    assert matched_gt_index(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), gt).shape == (0,)
    with pytest.raises(ValueError, match="not among"):
        matched_gt_index(torch.tensor([[3.0, 3, 4, 4]]), torch.tensor([0]), gt, check=True)


@pytest.mark.slow
def test_fashiondet_dicod_config_trains(tiny_fashiondet, tmp_path):
    """configs/fashiondet/retinanet/dicod.py: 2 iterations on the tiny FashionDet with a random teacher."""
    from _helpers import TINY_OVERRIDES

    from dicod_d2.data.datasets import thing_classes
    from dicod_d2.engine.defaults import default_argument_parser
    from dicod_d2.engine.train_loop import main

    names = thing_classes("fashiondet_tiny_train")
    write_random_teacher(tmp_path / "teacher.pth", names, input_size=CROP)
    argv = ["--config-file", str(REPO / "configs/fashiondet/retinanet/dicod.py"), *TINY_OVERRIDES,
            f"train.output_dir={tmp_path / 'run'}", "train.max_iter=2", "train.eval_period=0",
            f"model.distiller.teacher.path={tmp_path / 'teacher.pth'}"]
    trainer = main(default_argument_parser().parse_args(argv))
    assert trainer.iter == 2
    assert isinstance(trainer.model, DICODRetinaNet) and trainer.model.distiller is not None
    logged = trainer.storage.histories()
    for name in ("loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"):
        assert name in logged and torch.isfinite(torch.tensor(logged[name].latest()))
    saved = torch.load(tmp_path / "run" / "model_final.pth", weights_only=False)["model"]
    assert set(saved) == set(trainer.model.state_dict())
    assert not any(k.startswith("distiller") or "teacher" in k for k in saved)

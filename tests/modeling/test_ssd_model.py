"""SSD end to end from the LazyConfig: training steps, inference, empty ground truth, DICOD hook
(loss values against the core loss functions, KD_loc gradient path), the FashionDet config trains."""
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage
from torchvision.ops import box_iou

from dicod_d2.layers import crop_boxes_differentiable, crop_boxes_roi_align
from dicod_d2.losses import kd_cls_softmax, loc_feature_loss, loc_pixel_loss
from dicod_d2.modeling.distiller import DICODDistiller, raw_images
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


def _reference_positives(ssd, batch):
    """Independent re-derivation of SSD's positives: IoU >= 0.5 with the best gt, plus each gt's
    best anchor (a later gt wins a shared one). Returns image index [K], gt index [K], logits
    [K, C+1], deltas [K, 4] and anchors [K, 4] (XYXY px)."""
    images = ssd.preprocess_image(batch)
    feats = ssd.backbone(images.tensor)
    feats = [feats[f] for f in ssd.head_in_features]
    logits, deltas = ssd._transpose_dense_predictions(ssd.head(feats), [ssd.num_classes + 1, 4])
    logits, deltas = torch.cat(logits, 1), torch.cat(deltas, 1)
    anchors = Boxes.cat(ssd.anchor_generator(feats))
    rows = []
    for i, x in enumerate(batch):
        gt = x["instances"].gt_boxes
        if len(gt) == 0:
            continue
        iou = pairwise_iou(gt, anchors)  # [G, R]
        best_iou, assigned = iou.max(dim=0)
        assigned[best_iou < 0.5] = -1
        for g in range(len(gt)):
            assigned[iou[g].argmax()] = g
        rows += [(i, int(assigned[a]), a) for a in torch.nonzero(assigned >= 0).flatten().tolist()]
    image_index = torch.tensor([r[0] for r in rows])
    anchor_index = torch.tensor([r[2] for r in rows])
    return (image_index, torch.tensor([r[1] for r in rows]), logits[image_index, anchor_index],
            deltas[image_index, anchor_index], anchors.tensor[anchor_index])


def test_dicod_losses_agree_with_core_functions(distiller):
    ssd = _slim_ssd(distiller=distiller)  # training mode: BatchNorm uses batch statistics
    batch = _batch()
    with EventStorage():
        got = ssd(batch)
        image_index, gt_index, logits, deltas, anchors = _reference_positives(ssd, batch)
    assert len(image_index) > 3
    gt_boxes = [x["instances"].gt_boxes.tensor for x in batch]
    pos_gt = torch.stack([gt_boxes[i][j] for i, j in zip(image_index.tolist(), gt_index.tolist(), strict=True)])
    # the box loss on the same positives: SSD's own loss over the reference positive set
    target = ssd.box2box_transform.get_deltas(anchors, pos_gt)
    box = torch.nn.functional.smooth_l1_loss(deltas, target, beta=1.0, reduction="sum") / len(image_index)
    torch.testing.assert_close(got["loss_box_reg"], box)

    teacher, size, fmt = distiller.teacher, distiller.crop_size, "RGB"
    images_raw = raw_images(batch, ssd.backbone.size_divisibility)
    gt_input = teacher.normalize(crop_boxes_roi_align(images_raw, pos_gt, image_index, size), fmt)
    # KD_cls: softmax over C+1 against the teacher's logits of each positive's own gt crop
    with torch.no_grad():
        teacher_logits = teacher.model(gt_input)
    # every term: its sum over the K positives divided by SSD's normaliser, K
    k = len(image_index)
    torch.testing.assert_close(got["loss_kd_cls"], 0.4 * kd_cls_softmax(logits, teacher_logits, 2.0) / k)
    # loc terms: crops of the decoded predicted boxes vs the gt crops, pixels 4x4 and stem 8x8
    pred_boxes = ssd.box2box_transform.apply_deltas(deltas, anchors)
    pred_input = teacher.normalize(crop_boxes_differentiable(images_raw, pred_boxes, image_index, size), fmt)
    torch.testing.assert_close(got["loss_loc_pix"], 0.15 * loc_pixel_loss(pred_input, gt_input, 4) / k)
    with torch.no_grad():
        feats_pred = teacher.features(pred_input, ["stem"])
        feats_gt = teacher.features(gt_input, ["stem"])
    torch.testing.assert_close(got["loss_kd_loc"], 0.15 * loc_feature_loss(feats_pred, feats_gt, ["stem"], [8]) / k)


def test_kd_loc_gradient_reaches_the_box_branch_only(distiller):
    only_kd_loc = DICODDistiller(distiller.teacher, input_format="RGB", kd_cls=False, loc_pix=False, kd_loc=True)
    ssd = _slim_ssd(distiller=only_kd_loc)
    with EventStorage():
        losses = ssd(_batch())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_kd_loc"} and losses["loss_kd_loc"] > 0
    losses["loss_kd_loc"].backward()
    # the levels holding positives get a gradient (the others have no positive anchor)
    assert sum(c.weight.grad.abs().sum() for c in ssd.head.bbox_pred if c.weight.grad is not None) > 0
    assert all(conv.weight.grad is None or conv.weight.grad.abs().sum() == 0 for conv in ssd.head.cls_score)
    assert all(p.grad is None for p in distiller.teacher.model.parameters())


def test_images_without_objects_next_to_images_with_objects(distiller):
    ssd = _slim_ssd(distiller=distiller)
    with EventStorage():
        losses = ssd([_input([], [], seed=6), _input([[60, 40, 200, 110]], [1], seed=2)])
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in ssd.parameters() if p.grad is not None)


@pytest.mark.slow
def test_fashiondet_dicod_config_trains_and_evaluates(tiny_fashiondet, tmp_path):
    """configs/fashiondet/ssd/dicod.py: 2 iterations on the tiny FashionDet with a random teacher,
    then the COCO evaluation of the evaluation hook."""
    import json

    from _helpers import REPO, TINY_OVERRIDES
    from detectron2.data import MetadataCatalog

    from dicod_d2.data.datasets import thing_classes
    from dicod_d2.engine.defaults import default_argument_parser
    from dicod_d2.engine.train_loop import main
    from dicod_d2.modeling.meta_arch.ssd import SSD
    from dicod_d2.teacher import write_random_teacher

    names = thing_classes("fashiondet_tiny_train")
    write_random_teacher(tmp_path / "teacher.pth", names, input_size=16)
    out = tmp_path / "run"
    argv = ["--config-file", str(REPO / "configs/fashiondet/ssd/dicod.py"), *TINY_OVERRIDES,
            f"train.output_dir={out}", "train.max_iter=2", "train.eval_period=2",
            f"model.distiller.teacher.path={tmp_path / 'teacher.pth'}"]
    trainer = main(default_argument_parser().parse_args(argv))
    assert trainer.iter == 2
    assert isinstance(trainer.model, SSD) and trainer.model.distiller is not None
    logged = trainer.storage.histories()
    for name in ("loss_cls", "loss_box_reg", "loss_kd_cls", "loss_loc_pix", "loss_kd_loc"):
        assert name in logged and torch.isfinite(torch.tensor(logged[name].latest()))
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("bbox/AP" in m for m in metrics)
    detections = json.loads((out / "coco_instances_results.json").read_text())
    dataset_ids = MetadataCatalog.get("fashiondet_tiny_val").thing_dataset_id_to_contiguous_id
    assert detections and {d["category_id"] for d in detections} <= set(dataset_ids)
    saved = torch.load(out / "model_final.pth", weights_only=False)["model"]
    assert set(saved) == set(trainer.model.state_dict())
    assert not any(k.startswith("distiller") or "teacher" in k for k in saved)

"""Speed-ups keep the losses' values: the always-on ones (one roi_align for all gt crops, gt crops
shared by KD_cls and KD_loc, gt maps pooled before the per-positive gather, chunked teacher logits, no
teacher weight gradients) against a per-positive loop without them; the KD_loc positive cap (off by
default) and the teacher's channels-last / autocast options (off by default)."""
import pytest
import torch
import torch.nn.functional as F

from dicod_d2.layers import crop_boxes_differentiable
from dicod_d2.losses import kd_cls_softmax
from dicod_d2.modeling.distiller import DICODDistiller
from dicod_d2.teacher import FrozenTeacher, TeacherMeta, build_classifier
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

CLASSES = ["cat", "dog", "bird"]
SIZE = 16


def _teacher(**options):
    torch.manual_seed(0)
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=3, class_names=CLASSES, input_size=SIZE, channel_order="RGB",
        pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    return FrozenTeacher(build_classifier("resnet_tiny", 3), meta, **options)


@pytest.fixture(scope="module")
def teacher():
    return _teacher()


def _batch():
    """Two 40x48 images, 2 + 1 gt boxes, 7 positives (5 in image 0, 2 in image 1)."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 40, 48, generator=g) * 255
    gt_boxes = [torch.tensor([[2.0, 3.0, 20.0, 25.0], [22.0, 10.0, 45.0, 38.0]]), torch.tensor([[5.0, 5.0, 30.0, 33.0]])]
    pos_image = torch.tensor([0, 0, 1, 0, 1, 0, 0])
    pos_gt = torch.tensor([1, 0, 0, 1, 0, 0, 1])
    gt_of_pos = torch.stack([gt_boxes[i][j] for i, j in zip(pos_image.tolist(), pos_gt.tolist(), strict=True)])
    pred_boxes = (gt_of_pos + torch.randn(7, 4, generator=g) * 2).requires_grad_()
    logits = torch.randn(7, 4, generator=g).requires_grad_()
    return images, gt_boxes, logits, pos_image, pos_gt, pred_boxes


def _values(distiller, batch):
    losses = distiller.losses(*batch, mode="softmax")
    sum(losses.values()).backward()
    return {k: v.detach() for k, v in losses.items()}, batch[5].grad.clone()


def _loop_reference(teacher, batch):
    """DICOD losses [3] and the pred-box gradient [K, 4] without the speed-ups: per positive, its gt
    box cropped again for KD_cls and for KD_loc (``crop_boxes_differentiable``, one box at a time),
    teacher weights with ``requires_grad=True``, logits one crop at a time, the gt maps
    pooled per positive. The defaults of DICODDistiller: T 2, weights 0.4 / 0.15, layers pixels +
    stem pooled to 4 / 8."""
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    teacher.model.requires_grad_(True)
    try:
        cls_crops, pred_maps, gt_maps = [], {"pixels": [], "stem": []}, {"pixels": [], "stem": []}
        for k, (i, j) in enumerate(zip(pos_image.tolist(), pos_gt.tolist(), strict=True)):
            def crop(box, image=images[i : i + 1]):
                return teacher.normalize(crop_boxes_differentiable(image, box, torch.tensor([0]), SIZE), "BGR")

            cls_crops.append(crop(gt_boxes[i][j : j + 1]))
            gt_in, pred_in = crop(gt_boxes[i][j : j + 1]), crop(pred_boxes[k : k + 1])
            for name, pool in (("pixels", 4), ("stem", 8)):
                pred_maps[name].append(F.adaptive_avg_pool2d(teacher.features(pred_in, [name])[name], pool))
                gt_maps[name].append(F.adaptive_avg_pool2d(teacher.features(gt_in, [name])[name], pool).detach())
        with torch.no_grad():
            teacher_logits = torch.cat([teacher.model(c) for c in cls_crops])
        pix, stem = ((torch.cat(pred_maps[n]) - torch.cat(gt_maps[n])).abs().mean() for n in ("pixels", "stem"))
        kd = kd_cls_softmax(logits, teacher_logits, 2.0) / len(logits)  # the sum over K -> the mean
        losses = torch.stack([0.4 * kd, 0.15 * pix, 0.15 * stem])
        (grad,) = torch.autograd.grad(losses.sum(), pred_boxes)
    finally:
        teacher.model.requires_grad_(False)
        teacher.model.zero_grad(set_to_none=True)
    return losses.detach(), grad


@pytest.mark.parametrize("chunk_size", [1, 512])
def test_always_on_speedups_match_a_per_positive_loop(teacher, chunk_size):
    ref, ref_grad = _loop_reference(teacher, _batch())
    got, grad = _values(DICODDistiller(teacher, normalizer="positives", chunk_size=chunk_size), _batch())
    assert list(got) == ["loss_kd_cls", "loss_loc_pix", "loss_kd_loc"]
    torch.testing.assert_close(torch.stack(list(got.values())), ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-5)
    assert all(not p.requires_grad and p.grad is None for p in teacher.model.parameters())


def test_cap_none_and_large_cap_leave_values_and_rng_unchanged(teacher):
    torch.manual_seed(1)
    ref, ref_grad = _values(DICODDistiller(teacher, normalizer="positives"), _batch())
    ref_rng = torch.rand(1)
    for cap in (None, 5):  # 5 = the most positives any image has: every positive is kept
        torch.manual_seed(1)
        got, grad = _values(DICODDistiller(teacher, normalizer="positives", max_loc_positives_per_image=cap), _batch())
        if cap is None:
            assert torch.equal(torch.rand(1), ref_rng)  # no random draw without a cap
        for name in ref:
            assert torch.equal(got[name], ref[name]), name
        assert torch.equal(grad, ref_grad)


def test_cap_uses_a_random_subset_per_image_for_loc_only(teacher):
    batch = _batch()
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    torch.manual_seed(3)
    got = DICODDistiller(teacher, normalizer="positives", max_loc_positives_per_image=2).losses(*batch, mode="softmax")
    torch.manual_seed(3)
    keep = DICODDistiller._loc_subset(pos_image, 2)
    assert torch.bincount(pos_image[keep]).tolist() == [2, 2]
    full = DICODDistiller(teacher, normalizer="positives").losses(*batch, mode="softmax")
    subset = DICODDistiller(teacher, normalizer="positives").losses(
        images, gt_boxes, logits[keep], pos_image[keep], pos_gt[keep], pred_boxes[keep], mode="softmax"
    )
    assert torch.equal(got["loss_kd_cls"], full["loss_kd_cls"])  # KD_cls keeps every positive
    for name in ("loss_loc_pix", "loss_kd_loc"):
        torch.testing.assert_close(got[name], subset[name])
        assert not torch.equal(got[name], full[name])


def test_cap_must_be_positive(teacher):
    with pytest.raises(ValueError, match="max_loc_positives_per_image"):
        DICODDistiller(teacher, normalizer="positives", max_loc_positives_per_image=0)


def test_teacher_channels_last_same_values_and_input_grad(teacher):
    fast = _teacher(channels_last=True)
    x = torch.randn(4, 3, SIZE, SIZE)
    torch.testing.assert_close(fast.logits(x), teacher.logits(x), rtol=1e-4, atol=1e-4)
    grads = []
    for t in (teacher, fast):
        xi = x.clone().requires_grad_(True)
        feats = t.features(xi, ["pixels", "stem"])
        feats["stem"].square().mean().backward()
        grads.append((feats["stem"].detach(), xi.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-6)


def test_teacher_autocast_is_close_and_float32(teacher):
    amp = _teacher(amp_dtype="bfloat16")
    x = torch.randn(4, 3, SIZE, SIZE)
    got = amp.logits(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, teacher.logits(x), rtol=0.1, atol=0.1)
    feats = amp.features(x, ["stem"])
    assert feats["stem"].dtype == torch.float32
    with pytest.raises(ValueError, match="amp_dtype"):
        _teacher(amp_dtype="float8")

"""The label-smoothing control: the same KD_cls term toward (1-ε)·onehot + ε/C, no teacher."""
import pytest
import torch
import torch.nn.functional as F

from dicod_d2.losses import kd_cls_sigmoid, kd_cls_softmax
from dicod_d2.modeling.distiller import DICODDistiller


def _call(d, logits, mode, classes=(torch.tensor([2, 0]), torch.tensor([1]))):
    images = torch.rand(2, 3, 32, 32) * 255
    gt_boxes = [torch.tensor([[1.0, 1, 10, 10], [5, 5, 20, 20]]), torch.tensor([[0.0, 0, 8, 8]])]
    image_index = torch.tensor([0, 0, 1, 0])
    gt_index = torch.tensor([0, 1, 0, 0])
    pred = torch.tensor([[1.0, 1, 10, 10], [5, 5, 20, 20], [0, 0, 8, 8], [2, 2, 9, 9]])
    return d.losses(images, gt_boxes, logits, image_index, gt_index, pred, mode,
                    gt_classes=list(classes))


@pytest.mark.parametrize("mode", ["softmax", "sigmoid"])
def test_control_matches_kd_cls_toward_label_smoothed_targets(mode):
    d = DICODDistiller(None, normalizer="positives", kd_cls_target="label_smoothing", label_smoothing=0.1,
                       loc_pix=False, kd_loc=False)
    num_classes = 3
    logits = torch.randn(4, num_classes + (mode == "softmax"), requires_grad=True)
    out = _call(d, logits, mode)
    assert set(out) == {"loss_kd_cls"}
    classes = torch.tensor([2, 0, 1, 2])  # gt class of each positive
    target = torch.full((4, num_classes), 0.1 / num_classes)
    target[torch.arange(4), classes] += 0.9
    if mode == "softmax":
        # softmax(log p / T) is the tempered target, as for a teacher's logits
        expected = kd_cls_softmax(logits, target.log(), 2.0)
    else:
        expected = kd_cls_sigmoid(logits, target.log() - torch.log1p(-target), 2.0)
    assert out["loss_kd_cls"].item() == pytest.approx(0.4 * expected.item() / 4, rel=1e-5)  # mean over K
    out["loss_kd_cls"].backward()
    assert logits.grad.abs().sum() > 0


def test_control_is_zero_when_the_student_predicts_the_target():
    d = DICODDistiller(None, normalizer="positives", kd_cls_target="label_smoothing", loc_pix=False, kd_loc=False,
                       temperature=1.0)
    target = torch.full((4, 3), 0.1 / 3)
    target[torch.arange(4), torch.tensor([2, 0, 1, 2])] += 0.9
    logits = torch.cat([target.log(), torch.full((4, 1), -1e4)], 1)
    assert _call(d, logits, "softmax")["loss_kd_cls"].item() == pytest.approx(0.0, abs=1e-6)
    assert F.softmax(logits, 1)[:, :3].sum(1).allclose(torch.ones(4))


def test_control_needs_gt_classes_and_no_teacher_terms():
    with pytest.raises(ValueError, match="teacher=None only works"):
        DICODDistiller(None, normalizer="positives", kd_cls_target="label_smoothing")  # loc terms on by default
    d = DICODDistiller(None, normalizer="positives", kd_cls_target="label_smoothing", loc_pix=False, kd_loc=False)
    with pytest.raises(ValueError, match="needs gt_classes"):
        d.losses(torch.zeros(1, 3, 8, 8), [torch.tensor([[0.0, 0, 4, 4]])], torch.randn(1, 4),
                 torch.tensor([0]), torch.tensor([0]), torch.tensor([[0.0, 0, 4, 4]]), "softmax")

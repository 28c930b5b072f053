"""DICODDistiller, DistillationStudent and raw_images with a real (tiny, random) FrozenTeacher."""
import pytest
import torch
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from dicod_d2.errors import ConfigError
from dicod_d2.layers import crop_boxes_roi_align
from dicod_d2.losses import kd_cls_softmax
from dicod_d2.modeling.distiller import (
    DetectorNormalizer,
    DICODDistiller,
    DistillationPositives,
    DistillationStudent,
    raw_images,
)
from dicod_d2.teacher import FrozenTeacher, TeacherMeta, build_classifier
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

CLASSES = ["cat", "dog", "bird"]
SIZE = 16


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    model = build_classifier("resnet_tiny", len(CLASSES))
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=3, class_names=CLASSES, input_size=SIZE, channel_order="RGB",
        pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    return FrozenTeacher(model, meta)


@pytest.fixture
def batch():
    """Two 40x48 BGR images, 2 + 1 gt boxes, 5 positives (softmax logits with background)."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 40, 48, generator=g) * 255
    gt_boxes = [torch.tensor([[2.0, 3.0, 20.0, 25.0], [22.0, 10.0, 45.0, 38.0]]), torch.tensor([[5.0, 5.0, 30.0, 33.0]])]
    pos_image = torch.tensor([0, 0, 1, 0, 1])
    pos_gt = torch.tensor([1, 0, 0, 1, 0])
    gt_of_pos = torch.stack([gt_boxes[i][j] for i, j in zip(pos_image.tolist(), pos_gt.tolist(), strict=True)])
    pred_boxes = (gt_of_pos + torch.randn(5, 4, generator=g) * 2).requires_grad_()
    logits = torch.randn(5, 4, generator=g).requires_grad_()
    return images, gt_boxes, logits, pos_image, pos_gt, pred_boxes


def _assert_teacher_untouched(teacher):
    assert all(not p.requires_grad and p.grad is None for p in teacher.model.parameters())
    assert not teacher.model.training


def test_losses_finite_and_gradients_reach_student_and_boxes_only(teacher, batch):
    distiller = DICODDistiller(teacher, normalizer="positives", class_names=CLASSES)
    assert distiller.crop_size == SIZE and distiller.loc_pools == (4, 8)
    losses = distiller.losses(*batch, mode="softmax")
    assert set(losses) == {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    for v in losses.values():
        assert v.dim() == 0 and torch.isfinite(v) and v.item() > 0
    sum(losses.values()).backward()
    logits, pred_boxes = batch[2], batch[5]
    assert torch.isfinite(pred_boxes.grad).all() and pred_boxes.grad.abs().sum() > 0
    assert logits.grad.abs().sum() > 0
    _assert_teacher_untouched(teacher)


def test_kd_cls_uses_each_positives_own_gt(teacher, batch):
    """Loop reference: crop each positive's gt box alone, classify it alone."""
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    distiller = DICODDistiller(teacher, normalizer="positives", loc_pix=False, kd_loc=False, kd_cls_weight=0.4)
    got = distiller.losses(images, gt_boxes, logits, pos_image, pos_gt, pred_boxes, mode="softmax")
    ref_logits = []
    for i, j in zip(pos_image.tolist(), pos_gt.tolist(), strict=True):
        crop = crop_boxes_roi_align(images[i : i + 1], gt_boxes[i][j : j + 1], torch.tensor([0]), SIZE)
        ref_logits.append(teacher.logits(teacher.normalize(crop, "BGR")))
    expected = 0.4 * kd_cls_softmax(logits, torch.cat(ref_logits), 2.0) / len(logits)  # the mean over K
    assert set(got) == {"loss_kd_cls"}
    torch.testing.assert_close(got["loss_kd_cls"], expected)


def test_sigmoid_mode(teacher, batch):
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    losses = DICODDistiller(teacher, normalizer="positives").losses(
        images, gt_boxes, logits[:, :3], pos_image, pos_gt, pred_boxes, mode="sigmoid"
    )
    assert torch.isfinite(losses["loss_kd_cls"]) and losses["loss_kd_cls"] > 0
    with pytest.raises(ValueError, match="background"):
        DICODDistiller(teacher, normalizer="positives").losses(images, gt_boxes, logits, pos_image, pos_gt, pred_boxes, mode="sigmoid")


def test_kd_loc_zero_when_pred_equals_gt(teacher, batch):
    images, gt_boxes, logits, pos_image, pos_gt, _ = batch
    gt_of_pos = torch.stack([gt_boxes[i][j] for i, j in zip(pos_image.tolist(), pos_gt.tolist(), strict=True)])
    distiller = DICODDistiller(teacher, normalizer="positives", kd_cls=False)
    exact = distiller.losses(images, gt_boxes, logits, pos_image, pos_gt, gt_of_pos.clone(), mode="softmax")
    shifted = distiller.losses(images, gt_boxes, logits, pos_image, pos_gt, gt_of_pos + 3.0, mode="softmax")
    for name in ("loss_loc_pix", "loss_kd_loc"):
        assert exact[name].item() < 1e-5
        assert shifted[name].item() > 100 * max(exact[name].item(), 1e-6)


@pytest.mark.parametrize("no_gt", [False, True])
def test_empty_positives_or_no_gt_give_connected_zeros(teacher, no_gt):
    images = torch.rand(2, 3, 24, 24) * 255
    gt_boxes = [torch.zeros(0, 4), torch.zeros(0, 4)] if no_gt else [torch.tensor([[1.0, 1.0, 9.0, 9.0]]), torch.zeros(0, 4)]
    logits = torch.zeros(0, 4, requires_grad=True)
    pred = torch.zeros(0, 4, requires_grad=True)
    index = torch.zeros(0, dtype=torch.long)
    losses = DICODDistiller(teacher, normalizer="positives").losses(images, gt_boxes, logits, index, index, pred, mode="softmax")
    assert set(losses) == {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert all(v.item() == 0.0 and v.requires_grad for v in losses.values())
    sum(losses.values()).backward()
    assert logits.grad is not None and pred.grad is not None
    _assert_teacher_untouched(teacher)


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_red_patch_arrives_red_at_the_teacher(teacher, input_format):
    red = [0.0, 0.0, 255.0] if input_format == "BGR" else [255.0, 0.0, 0.0]
    images = torch.zeros(1, 3, 32, 32)
    images[0, :, 8:24, 8:24] = torch.tensor(red).view(3, 1, 1)
    seen = []
    hook = teacher.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        DICODDistiller(teacher, normalizer="positives", loc_pix=False, kd_loc=False, input_format=input_format).losses(
            images, [torch.tensor([[8.0, 8.0, 24.0, 24.0]])], torch.zeros(1, 4), torch.tensor([0]),
            torch.tensor([0]), torch.tensor([[8.0, 8.0, 24.0, 24.0]]), mode="softmax",
        )
    finally:
        hook.remove()
    assert len(seen) == 1
    mean = torch.tensor(teacher.meta.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(teacher.meta.pixel_std).view(1, 3, 1, 1)
    pixels = seen[0] * std + mean  # teacher order: RGB
    torch.testing.assert_close(pixels[:, 0], torch.full_like(pixels[:, 0], 255.0), atol=1e-3, rtol=0)
    assert pixels[:, 1:].abs().max() < 1e-3


def test_bad_configuration_and_inputs_raise(teacher, batch):
    with pytest.raises(ValueError, match="pixels"):
        DICODDistiller(teacher, normalizer="positives", loc_layers=("stem",))
    with pytest.raises(ValueError, match="feature layer"):
        DICODDistiller(teacher, normalizer="positives", loc_layers=("pixels",))
    with pytest.raises(ValueError, match="do not match"):
        DICODDistiller(teacher, normalizer="positives", class_names=["dog", "cat", "bird"])
    # values first used in a training step are checked when the distiller is built (one error line)
    with pytest.raises(ConfigError, match="loc_pools entry must be a positive integer"):
        DICODDistiller(teacher, loc_layers=("pixels", "stem"), loc_pools=(4, 0))
    with pytest.raises(ConfigError, match="crop_size must be a positive integer"):
        DICODDistiller(teacher, crop_size=-1)
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    with pytest.raises(ValueError, match="does not exist"):
        DICODDistiller(teacher, normalizer="positives", debug_checks=True).losses(
            images, gt_boxes, logits, pos_image, pos_gt + 1, pred_boxes, mode="softmax")
    with pytest.raises(ValueError, match="mode"):
        DICODDistiller(teacher, normalizer="positives").losses(images, gt_boxes, logits, pos_image, pos_gt, pred_boxes, mode="softmx")
    distiller = DICODDistiller(teacher, normalizer="positives", loc_layers=("pixels",), kd_loc=False)
    assert distiller.loss_names == ("loss_kd_cls", "loss_loc_pix")
    unfrozen = FrozenTeacher(build_classifier("resnet_tiny", 3), teacher.meta)
    unfrozen.model.requires_grad_(True)
    with pytest.raises(ValueError, match="requires_grad"):
        DICODDistiller(unfrozen)


class _Student(DistillationStudent, nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(2, 2)


def test_student_mixin_keeps_teacher_outside_module_tree(teacher):
    student = _Student()
    student.distiller = DICODDistiller(teacher, normalizer="positives")
    assert list(student.state_dict()) == ["head.weight", "head.bias"]
    assert len(list(student.parameters())) == 2 and len(list(student.modules())) == 2
    student.train()
    assert not teacher.model.training
    student.double()  # any _apply reaches the teacher (as model.to(device) does)
    try:
        assert teacher.dtype == torch.float64 and student.head.weight.dtype == torch.float64
    finally:
        student.float()
    assert teacher.dtype == torch.float32
    with pytest.raises(TypeError, match="DICODDistiller"):
        student.distiller = teacher
    student.distiller = None
    student.double()
    assert teacher.dtype == torch.float32


class _Detector(nn.Module):
    """A parent detector whose training forward hands ``hands`` times the positives of ``batch``."""

    def __init__(self, batch, hands=1):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.size_divisibility = 0
        self.device = torch.device("cpu")
        self.batch, self.hands, self.built = batch, hands, 0

    def forward(self, batched_inputs):
        _, _, logits, pos_image, pos_gt, pred_boxes = self.batch

        def build(gt_instances):
            assert [len(g) for g in gt_instances] == [len(x["instances"]) for x in batched_inputs]
            self.built += 1
            return DistillationPositives(logits, pos_image, pos_gt, pred_boxes, "softmax", DetectorNormalizer(7, 3))

        for _ in range(self.hands):
            self.hand_positives(build)
        return {"loss_det": logits.sum()}


class _HandingStudent(DistillationStudent, _Detector):
    pass


def _detectron2_inputs(batch):
    images, gt_boxes = batch[0], batch[1]
    inputs = []
    for image, boxes in zip(images, gt_boxes, strict=True):
        inst = Instances(tuple(image.shape[1:]))
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.zeros(len(boxes), dtype=torch.long)
        inputs.append({"image": image, "instances": inst})
    return inputs


def test_student_contract_hands_positives_once_to_the_distiller(teacher, batch):
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    distiller = DICODDistiller(teacher, input_format="BGR")
    student = _HandingStudent(batch)
    student.distiller = distiller
    losses = student.train()(_detectron2_inputs(batch))
    ref = distiller.losses(images, gt_boxes, logits, pos_image, pos_gt, pred_boxes, mode="softmax",
                           detector_normalizer=DetectorNormalizer(7, 3))
    assert list(losses) == ["loss_det", *distiller.loss_names] and student.built == 1
    for name in distiller.loss_names:
        assert torch.equal(losses[name], ref[name]), name
    student.eval()(_detectron2_inputs(batch))  # inference and plain training never build positives
    student.distiller = None
    student.train()(_detectron2_inputs(batch))
    assert student.built == 1
    for hands, message in ((0, "did not call hand_positives"), (2, "twice")):
        student = _HandingStudent(batch, hands=hands)
        student.distiller = distiller
        with pytest.raises(RuntimeError, match=message):
            student.train()(_detectron2_inputs(batch))


def test_every_student_is_exported_and_distills_through_the_mixin():
    from dicod_d2.modeling import meta_arch

    assert sorted(meta_arch.__all__) == ["DICODGeneralizedRCNN", "DICODRetinaNet", "SSD"]
    for name in meta_arch.__all__:
        assert getattr(meta_arch, name).__mro__[1] is DistillationStudent, name
    for cls in (meta_arch.DICODGeneralizedRCNN, meta_arch.DICODRetinaNet):  # detectron2's forward, unchanged
        assert not {"forward", "forward_training"} & set(vars(cls)), f"{cls.__name__} re-implements its parent's forward"


def test_raw_images_matches_imagelist_padding():
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)} for h, w in ((30, 41), (37, 20))]
    raw = raw_images(inputs, size_divisibility=32)
    ref = ImageList.from_tensors([(x["image"].float() - 100.0) / 50.0 for x in inputs], 32)
    assert raw.shape == ref.tensor.shape == (2, 3, 64, 64) and raw.dtype == torch.float32
    torch.testing.assert_close(raw[1, :, :37, :20], inputs[1]["image"].float())
    assert raw[1, :, 37:].abs().sum() == 0 and raw[1, :, :, 20:].abs().sum() == 0


def _grads(losses, *tensors):
    grads = torch.autograd.grad(sum(losses.values()), tensors)
    return [g.flatten() for g in grads]


def test_detector_normalizer_divides_the_sum_over_positives_by_the_students_normalisers(teacher, batch):
    """The authors' balance: a term x its normaliser = λ x the sum of its per-positive values."""
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    k = len(logits)
    per_k = DICODDistiller(teacher, normalizer="positives").losses(*batch, mode="softmax")  # λ x mean
    norm = DetectorNormalizer(cls=20.0, box=8.0)
    got = DICODDistiller(teacher).losses(*batch, mode="softmax", detector_normalizer=norm)
    torch.testing.assert_close(got["loss_kd_cls"] * norm.cls, per_k["loss_kd_cls"] * k)
    for name in ("loss_loc_pix", "loss_kd_loc"):  # localization terms follow the box loss
        torch.testing.assert_close(got[name] * norm.box, per_k[name] * k)
    # same direction of every gradient, only its length changes
    for g_det, g_pos in zip(_grads(got, logits, pred_boxes), _grads(per_k, logits, pred_boxes), strict=True):
        cos = torch.nn.functional.cosine_similarity(g_det, g_pos, dim=0)
        assert g_det.norm() > 0 and cos > 0.999


def test_detector_normalizer_is_required_and_positive(teacher, batch):
    with pytest.raises(ValueError, match="DetectorNormalizer"):
        DICODDistiller(teacher).losses(*batch, mode="softmax")
    with pytest.raises(ValueError, match="> 0"):
        DICODDistiller(teacher).losses(*batch, mode="softmax", detector_normalizer=DetectorNormalizer(0.0, 4.0))
    with pytest.raises(ValueError, match="normalizer must be one of"):
        DICODDistiller(teacher, normalizer="batch")


def test_detector_normalizer_without_positives_or_gt_is_finite(teacher):
    images = torch.rand(2, 3, 32, 32) * 255
    gt_boxes = [torch.zeros(0, 4), torch.zeros(0, 4)]
    logits = torch.randn(0, 4, requires_grad=True)
    pred = torch.zeros(0, 4, requires_grad=True)
    index = torch.zeros(0, dtype=torch.long)
    losses = DICODDistiller(teacher).losses(
        images, gt_boxes, logits, index, index, pred, mode="softmax", detector_normalizer=DetectorNormalizer(256.0, 256.0)
    )
    assert set(losses) == {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert all(torch.isfinite(v) and v.item() == 0.0 for v in losses.values())
    sum(losses.values()).backward()
    assert logits.grad is not None and pred.grad is not None


def test_loc_pix_on_the_image_scale_is_std_times_the_teacher_scale(batch):
    """'image' compares 0-255 crops (mean-subtracted, std 1): with a teacher of std s on every channel,
    L_loc_pix is exactly s times its value on the teacher-normalised crops; KD_loc is unchanged."""
    std = 57.5
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=3, class_names=CLASSES, input_size=SIZE, channel_order="RGB",
        pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=(std, std, std),
    )
    torch.manual_seed(0)
    teacher = FrozenTeacher(build_classifier("resnet_tiny", len(CLASSES)), meta)
    norm = DetectorNormalizer(10.0, 10.0)
    on_teacher = DICODDistiller(teacher, kd_cls=False).losses(*batch, mode="softmax", detector_normalizer=norm)
    on_image = DICODDistiller(teacher, kd_cls=False, loc_pix_space="image").losses(
        *batch, mode="softmax", detector_normalizer=norm
    )
    torch.testing.assert_close(on_image["loss_loc_pix"], std * on_teacher["loss_loc_pix"])
    torch.testing.assert_close(on_image["loss_kd_loc"], on_teacher["loss_kd_loc"])
    with pytest.raises(ValueError, match="loc_pix_space"):
        DICODDistiller(teacher, loc_pix_space="pixels")


def test_index_checks_only_with_debug_checks(teacher, batch):
    images, gt_boxes, logits, pos_image, pos_gt, pred_boxes = batch
    bad = (images, gt_boxes, logits, pos_image + 5, pos_gt, pred_boxes)
    with pytest.raises(ValueError, match="pos_image_index out of range"):
        DICODDistiller(teacher, normalizer="positives", debug_checks=True).losses(*bad, mode="softmax")
    # shapes are always checked
    with pytest.raises(ValueError, match="pred_boxes must have shape"):
        DICODDistiller(teacher, normalizer="positives").losses(
            images, gt_boxes, logits, pos_image, pos_gt, pred_boxes[:2], mode="softmax"
        )


def test_no_teacher_control_adds_dicods_loc_pix_without_any_teacher_output(teacher, batch):
    """The label-smoothing control with L_loc_pix: the same L_loc_pix as DICOD's (same crops, same
    normalisation, same λ_loc), and the teacher network is never run."""
    gt_classes = [torch.tensor([0, 2]), torch.tensor([1])]
    dicod = DICODDistiller(teacher, normalizer="positives", kd_cls=False, kd_loc=False)
    expected = dicod.losses(*batch, mode="softmax")["loss_loc_pix"]
    control = DICODDistiller(
        teacher, normalizer="positives", kd_cls_target="label_smoothing", label_smoothing=0.2,
        kd_loc=False, loc_layers=["pixels"],
    )
    calls = []
    handle = teacher.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        got = control.losses(*batch, mode="softmax", gt_classes=gt_classes)
    finally:
        handle.remove()
    assert calls == [] and set(got) == {"loss_kd_cls", "loss_loc_pix"}
    torch.testing.assert_close(got["loss_loc_pix"], expected)
    without_loc = DICODDistiller(
        None, normalizer="positives", kd_cls_target="label_smoothing", label_smoothing=0.2,
        loc_pix=False, kd_loc=False,
    ).losses(*batch, mode="softmax", gt_classes=gt_classes)
    torch.testing.assert_close(got["loss_kd_cls"], without_loc["loss_kd_cls"])
    with pytest.raises(ConfigError, match="uses no teacher output"):
        DICODDistiller(teacher, kd_cls_target="label_smoothing", loc_layers=["pixels", "stem"], kd_loc=False)
    with pytest.raises(ConfigError, match="uses no teacher output"):
        DICODDistiller(teacher, kd_cls_target="label_smoothing", kd_loc=True)


def test_deranged_teacher_gives_each_class_another_class_score(teacher):
    """The wrong-knowledge control: logit i is the teacher's logit of class i-1 (mod C), so no class
    keeps its own score; the features are untouched."""
    deranged = FrozenTeacher(teacher.model, teacher.meta, derange_classes=True)
    x = torch.randn(4, 3, SIZE, SIZE)
    right, wrong = teacher.logits(x), deranged.logits(x)
    for i in range(len(CLASSES)):
        torch.testing.assert_close(wrong[:, i], right[:, (i - 1) % len(CLASSES)])
    assert not torch.equal(wrong.argmax(1), right.argmax(1))
    torch.testing.assert_close(deranged.features(x, ["stem"])["stem"], teacher.features(x, ["stem"])["stem"])
    one_class = TeacherMeta(
        arch="resnet_tiny", num_classes=1, class_names=["a"], input_size=SIZE, channel_order="RGB",
        pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    with pytest.raises(ConfigError, match="at least 2 classes"):
        FrozenTeacher(build_classifier("resnet_tiny", 1), one_class, derange_classes=True)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite2"])
def test_kd_loc_stem_and_normalisation_of_every_teacher_family(arch, batch, tmp_path):
    """A teacher trained from shipped ImageNet weights keeps their normalisation in its file; KD_loc
    reads each family's stem (stride 4 for ResNets, 2 for MobileNetV2 / EfficientNet-Lite) and sends
    a gradient back into the predicted boxes."""
    from dicod_d2.modeling.classification import CropClassifier
    from dicod_d2.teacher import SHIPPED_WEIGHTS, save_teacher_file

    shipped = f"{arch}_imagenet" if arch.startswith("efficientnet") else None
    model = CropClassifier(arch, CLASSES, input_size=32, init_weights=shipped)
    path = tmp_path / "teacher.pth"
    save_teacher_file(path, model.classifier, model.teacher_meta())
    teacher = FrozenTeacher.from_file(str(path))
    mean, std = (SHIPPED_WEIGHTS[shipped][2][1:] if shipped else (IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD))
    assert (tuple(teacher.meta.pixel_mean), tuple(teacher.meta.pixel_std)) == (tuple(mean), tuple(std))
    stem = teacher.features(torch.zeros(2, 3, 32, 32), ["stem"])["stem"]
    stride = teacher.model.feature_strides["stem"]
    assert stem.shape == (2, teacher.model.feature_channels["stem"], 32 // stride, 32 // stride)
    distiller = DICODDistiller(teacher, normalizer="positives", kd_cls=False, class_names=CLASSES)
    losses = distiller.losses(*batch, mode="softmax")
    assert set(losses) == {"loss_loc_pix", "loss_kd_loc"} and losses["loss_kd_loc"].item() > 0
    losses["loss_kd_loc"].backward()
    pred_boxes = batch[5]
    assert torch.isfinite(pred_boxes.grad).all() and pred_boxes.grad.abs().sum() > 0
    _assert_teacher_untouched(teacher)

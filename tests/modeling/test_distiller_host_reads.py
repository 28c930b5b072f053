"""DICOD's training path reads nothing data-dependent back to the host beyond what it must: per
student, one training step with full DICOD makes at most 2 host reads more than the baseline's step
(counted with torch.profiler on CPU); and what replaced the reads keeps the values: a gt box without a
positive changes no loss, the raw batch is padded as detectron2 pads the normalised one."""
import pytest
import torch
from _helpers import REPO
from detectron2.config import instantiate
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from dicod_d2.config.lazy import load_config
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
from dicod_d2.modeling.distiller import (
    DetectorNormalizer,
    DICODDistiller,
    batch_image_index,
    raw_images,
)
from dicod_d2.teacher import FrozenTeacher, TeacherMeta, build_classifier
from dicod_d2.teacher.classifiers import IMAGENET_PIXEL_MEAN, IMAGENET_PIXEL_STD

#: the operators that read tensor values back to the host: every scalar read (``.item()``, ``int()``,
#: ``bool()``, ``if tensor:``) and those whose output size depends on the values (``nonzero``, also
#: inside boolean-mask indexing and its backward, and ``torch.unique``)
HOST_READS = {
    "aten::_local_scalar_dense", "aten::nonzero", "aten::_unique", "aten::_unique2", "aten::unique_dim",
    "aten::unique_consecutive", "aten::unique_dim_consecutive",
}
#: per student: config file, key of the model, _target_ to set, config edits, image side (px)
STUDENTS = {
    "faster_rcnn": ("configs/fashiondet/faster_rcnn/dicod.py", None, {"distiller": None}, 64),
    "retinanet": ("configs/common/models/retinanet_fashiondet.py",
                  "dicod_d2.modeling.meta_arch.retinanet.DICODRetinaNet", {}, 64),
    "ssd300": ("configs/common/models/ssd.py", None,
               {"backbone.width": 0.125, "backbone.norm": "BN", "num_classes": 10}, 300),
}
SIZE = 16  # teacher input side


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    meta = TeacherMeta(
        arch="resnet_tiny", num_classes=10, class_names=FASHION_MNIST_CLASSES, input_size=SIZE,
        channel_order="RGB", pixel_mean=IMAGENET_PIXEL_MEAN, pixel_std=IMAGENET_PIXEL_STD,
    )
    return FrozenTeacher(build_classifier("resnet_tiny", 10), meta)


def _student(name):
    config, target, edits, _ = STUDENTS[name]
    cfg = load_config(str(REPO / config)).model
    if target is not None:
        cfg._target_ = target
    for key, value in edits.items():
        OmegaConf.update(cfg, key, value, merge=False)
    torch.manual_seed(0)
    return instantiate(cfg).train()


def _batch(side, seed):
    """Three images: 3 and 1 gt boxes, and one without gt."""
    g = torch.Generator().manual_seed(seed)
    batch = []
    for num in (3, 1, 0):
        xy = torch.rand(num, 2, generator=g) * side / 2
        inst = Instances((side, side))
        inst.gt_boxes = Boxes(torch.cat([xy, xy + side / 8 + torch.rand(num, 2, generator=g) * side / 3], 1))
        inst.gt_classes = torch.randint(0, 10, (num,), generator=g)
        image = torch.randint(0, 256, (3, side, side), generator=g, dtype=torch.uint8)
        batch.append({"image": image, "instances": inst, "height": side, "width": side})
    return batch


def _host_reads(model, batch):
    """Host reads of one training step (forward, backward) of ``model`` on ``batch``, and its loss names."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with EventStorage():
            losses = model(batch)
        sum(losses.values()).backward()
    return sum(e.name in HOST_READS for e in prof.events()), set(losses)


@pytest.mark.parametrize("name", list(STUDENTS))
def test_dicod_adds_at_most_two_host_reads_per_training_step(teacher, name):
    """The reads DICOD needs: the positives' ``nonzero`` where the baseline has none (their number K
    sets the teacher's batch), and on CPU the range check of the positives' image index in the
    KD_loc crop. Everything else (gt crops, gathering, padding, their backward) has host-known shapes."""
    torch.set_num_threads(1)
    model = _student(name)
    side = STUDENTS[name][3]
    reads, names = {}, {}
    for variant, distiller in (("baseline", None), ("dicod", DICODDistiller(teacher, input_format=model.input_format))):
        model.distiller = distiller
        _host_reads(model, _batch(side, seed=0))  # warm-up
        reads[variant], names[variant] = _host_reads(model, _batch(side, seed=1))
    assert names["dicod"] - names["baseline"] == {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert reads["baseline"] > 0  # the counter sees the detectors' own reads
    assert reads["dicod"] - reads["baseline"] <= 2, reads


def _positives_batch():
    """Two 40x48 images, gt boxes 2 + 1, 5 positives of which none points to gt box 1 of image 0."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 40, 48, generator=g) * 255
    gt_boxes = [torch.tensor([[2.0, 3.0, 20.0, 25.0], [22.0, 10.0, 45.0, 38.0]]), torch.tensor([[5.0, 5.0, 30.0, 33.0]])]
    pos_image, pos_gt = torch.tensor([0, 1, 0, 1, 0]), torch.tensor([0, 0, 0, 0, 0])
    gt_of_pos = torch.stack([gt_boxes[i][j] for i, j in zip(pos_image.tolist(), pos_gt.tolist(), strict=True)])
    pred_boxes = gt_of_pos + torch.randn(5, 4, generator=g) * 2
    return images, gt_boxes, torch.randn(5, 11, generator=g), pos_image, pos_gt, pred_boxes


def _losses_and_grads(distiller, images, gt_boxes, logits, pos_image, pos_gt, pred_boxes):
    logits, pred_boxes = logits.clone().requires_grad_(), pred_boxes.clone().requires_grad_()
    losses = distiller.losses(images, gt_boxes, logits, pos_image, pos_gt, pred_boxes, mode="softmax",
                              detector_normalizer=DetectorNormalizer(cls=7.0, box=9.0))
    grads = torch.autograd.grad(sum(losses.values()), (logits, pred_boxes))
    return torch.stack(list(losses.values())), grads


def test_a_gt_box_without_positive_changes_no_loss(teacher):
    """Every gt box is cropped and classified (no ``unique`` of the used ones): an unused one only
    adds teacher work, never a change in the losses or their gradients."""
    images, gt_boxes, *rest = _positives_batch()
    distiller = DICODDistiller(teacher, input_format="BGR")
    with_unused = _losses_and_grads(distiller, images, gt_boxes, *rest)
    without = _losses_and_grads(distiller, images, [gt_boxes[0][:1], gt_boxes[1]], *rest)
    torch.testing.assert_close(with_unused, without)
    # the unused box moved: still the same losses (it is not what a positive's terms read)
    moved = [torch.cat([gt_boxes[0][:1], gt_boxes[0][1:] - 10.0]), gt_boxes[1]]
    torch.testing.assert_close(_losses_and_grads(distiller, images, moved, *rest), without)


def test_batch_image_index_repeats_each_image_by_its_rows():
    assert batch_image_index([2, 0, 3, 1]).tolist() == [0, 0, 2, 2, 2, 3]
    assert batch_image_index([0]).tolist() == []


@pytest.mark.parametrize("sizes,divisibility", [
    (((30, 41), (37, 20)), 32), (((30, 41),), 32), (((64, 32), (31, 63), (1, 1)), 32), (((30, 41), (37, 20)), 0),
])
def test_raw_images_pads_as_imagelist(sizes, divisibility):
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)} for h, w in sizes]
    raw = raw_images(inputs, size_divisibility=divisibility)
    ref = ImageList.from_tensors([x["image"].float() for x in inputs], divisibility).tensor
    assert raw.dtype == torch.float32
    assert torch.equal(raw, ref)

"""EfficientNet-Lite0 backbone: shapes/strides, strict loading of the shipped ImageNet weights, frozen
BN, and one training step of the ImageNet-initialised FashionDet Faster R-CNN (baseline and DICOD)."""
import pytest
import torch
from _helpers import REPO, TINY_OVERRIDES
from detectron2.config import instantiate
from detectron2.layers import FrozenBatchNorm2d
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

import dicod_d2.data  # noqa: F401  registers FashionDet (its class names)
from dicod_d2.config.lazy import load_config
from dicod_d2.data.fashion_mnist import FASHION_MNIST_CLASSES
from dicod_d2.modeling.backbone import (
    LITE0_IMAGENET,
    EfficientNetLite0,
    build_efficientnet_lite_backbone,
    build_efficientnet_lite_fpn_backbone,
)
from dicod_d2.modeling.backbone.efficientnet_lite import HEAD_PREFIXES
from dicod_d2.teacher import write_random_teacher
from dicod_d2.teacher.classifiers import SHIPPED_WEIGHTS, WeightsMismatchError

CHANNELS = {"res2": 24, "res3": 40, "res4": 112, "res5": 320}
STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}


@pytest.fixture(scope="module")
def shipped():
    """The shipped ImageNet state dict."""
    return torch.load(SHIPPED_WEIGHTS[LITE0_IMAGENET][1](), map_location="cpu")


@pytest.fixture(scope="module")
def pretrained():
    return build_efficientnet_lite_backbone(weights=LITE0_IMAGENET, frozen_bn=True).eval()


def test_outputs_have_the_documented_shapes_and_strides(pretrained):
    with torch.no_grad():
        out = pretrained(torch.randn(1, 3, 256, 256))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (1, CHANNELS[k], 256 // STRIDES[k], 256 // STRIDES[k]) for k in CHANNELS
    }
    shapes = pretrained.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        k: (CHANNELS[k], STRIDES[k]) for k in CHANNELS
    }
    fpn = build_efficientnet_lite_fpn_backbone(out_channels=32, weights=None, frozen_bn=False)
    with torch.no_grad():
        p = fpn(torch.randn(1, 3, 256, 256))
    assert {k: (v.shape[1], 256 // v.shape[-1]) for k, v in p.items()} == {
        "p2": (32, 4), "p3": (32, 8), "p4": (32, 16), "p5": (32, 32), "p6": (32, 64)
    }


def test_every_backbone_tensor_comes_from_the_shipped_file(pretrained, shipped):
    own = pretrained.state_dict()
    for key, value in own.items():
        assert torch.equal(value, shipped[key]), key
    head = sorted(k for k in shipped if k.startswith(HEAD_PREFIXES))
    assert head and not set(head) & set(own)
    assert set(shipped) - set(head) - {k for k in shipped if k.endswith("num_batches_tracked")} \
        == set(own)


@pytest.mark.parametrize("change", ["renamed", "reshaped"])
def test_a_changed_key_or_shape_is_a_typed_error_naming_it(shipped, tmp_path, change):
    bad = dict(shipped)
    key = "_blocks.3._depthwise_conv.weight"
    if change == "renamed":
        bad["_blocks.3.depthwise.weight"] = bad.pop(key)
    else:
        bad[key] = torch.zeros(1, 1, 3, 3)
    path = tmp_path / "lite0.pth"
    torch.save(bad, path)
    with pytest.raises(WeightsMismatchError, match=r"_blocks\.3\._depthwise_conv\.weight"):
        EfficientNetLite0().load_weights(path)


def test_frozen_bn_statistics_do_not_move_in_train_mode(pretrained):
    model = build_efficientnet_lite_backbone(weights=LITE0_IMAGENET, frozen_bn=True, freeze_at=1)
    model.train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model(torch.randn(2, 3, 64, 64) * 3)["res5"].sum().backward()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model._conv_stem.parameters())
    assert all(p.requires_grad for p in model._blocks[1].parameters())
    assert model._blocks[1]._depthwise_conv.weight.grad is not None


def _one_image():
    inst = Instances((96, 128))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 10.0, 60.0, 70.0]]))
    inst.gt_classes = torch.tensor([2])
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 96, 128), generator=g).float()
    return {"image": image, "instances": inst, "height": 96, "width": 128}


@pytest.mark.parametrize("variant", ["baseline", "dicod"])
def test_one_training_step_of_the_config(variant, tmp_path):
    overrides = list(TINY_OVERRIDES)
    if variant != "baseline":
        teacher = write_random_teacher(tmp_path / "t.pth", FASHION_MNIST_CLASSES, input_size=32)
        overrides.append(f"model.distiller.teacher.path={teacher}")
    cfg = load_config(str(REPO / f"configs/fashiondet/faster_rcnn_lite0/{variant}.py"), overrides)
    assert cfg.model.input_format == cfg.dataloader.train.mapper.image_format == "RGB"
    assert cfg.train.output_dir.endswith(f"faster_rcnn_lite0_{variant}")
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    with EventStorage():
        losses = model([_one_image(), _one_image()])
    expected = {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    if variant == "dicod":
        expected |= {"loss_kd_cls", "loss_loc_pix", "loss_kd_loc"}
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    head = model.roi_heads.box_predictor.cls_score.weight
    before = head.detach().clone()
    sum(losses.values()).backward()
    optimizer.step()
    assert not torch.equal(before, head)

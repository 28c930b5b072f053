"""Student backbones: MobileNetV2(-FPN), width-reduced ResNets (QR50), torchvision weight loading."""

import math

import pytest
import torch
import torchvision
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling.backbone import BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import nn

from dicod_d2.errors import ConfigError
from dicod_d2.modeling.backbone.mobilenet_v2 import (
    MobileNetV2,
    build_mobilenetv2_backbone,
    build_mobilenetv2_fpn_backbone,
)
from dicod_d2.modeling.backbone.resnet_width import (
    build_resnet_width_backbone,
    build_resnet_width_fpn_backbone,
)
from dicod_d2.modeling.backbone.weights import load_torchvision_weights

# name -> (bottom-up builder kwargs, expected {feature: (channels, stride)})
BOTTOM_UPS = {
    "mobilenet_v2": (
        build_mobilenetv2_backbone,
        {},
        {"res2": (24, 4), "res3": (32, 8), "res4": (96, 16), "res5": (1280, 32)},
    ),
    "mobilenet_v2_x0.5": (  # torchvision rounds 12 -> 16 channels (multiples of 8)
        build_mobilenetv2_backbone,
        {"width_mult": 0.5},
        {"res2": (16, 4), "res3": (16, 8), "res4": (48, 16), "res5": (1280, 32)},
    ),
    "qr50": (
        build_resnet_width_backbone,
        {"depth": 50, "width_divisor": 4},
        {"res2": (64, 4), "res3": (128, 8), "res4": (256, 16), "res5": (512, 32)},
    ),
    "r18_half": (
        build_resnet_width_backbone,
        {"depth": 18, "width_divisor": 2},
        {"res2": (32, 4), "res3": (64, 8), "res4": (128, 16), "res5": (256, 32)},
    ),
}
FPN_BUILDERS = {
    "mobilenet_v2": (build_mobilenetv2_fpn_backbone, {}),
    "qr50": (build_resnet_width_fpn_backbone, {}),
    "r18_half": (build_resnet_width_fpn_backbone, {"depth": 18, "width_divisor": 2}),
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(BOTTOM_UPS))
def test_bottom_up_names_channels_strides_and_shapes(name):
    builder, kwargs, expected = BOTTOM_UPS[name]
    model = builder(**kwargs).eval()
    shapes = model.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == expected
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 96))
    assert set(out) == set(expected)
    for k, (channels, stride) in expected.items():
        assert tuple(out[k].shape) == (1, channels, math.ceil(128 / stride), math.ceil(96 / stride))


@pytest.mark.parametrize("name", sorted(FPN_BUILDERS))
def test_fpn_outputs_p2_to_p6(name):
    builder, kwargs = FPN_BUILDERS[name]
    fpn = builder(out_channels=64, **kwargs).eval()
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert {k: (s.channels, s.stride) for k, s in fpn.output_shape().items()} == {
        k: (64, s) for k, s in strides.items()
    }
    with torch.no_grad():
        out = fpn(torch.randn(1, 3, 128, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: (1, 64, math.ceil(128 / s), math.ceil(96 / s)) for k, s in strides.items()
    }


def test_qr50_residual_stages_are_a_sixteenth_of_resnet50():
    r50 = ResNet(
        BasicStem(), ResNet.make_default_stages(depth=50, norm="BN"), out_features=["res5"]
    )
    qr50 = build_resnet_width_backbone(depth=50, width_divisor=4)
    full = build_resnet_width_backbone(depth=50, width_divisor=1)
    stages = ("res2", "res3", "res4", "res5")
    r50_stages = sum(_params(getattr(r50, s)) for s in stages)
    ratio = sum(_params(getattr(qr50, s)) for s in stages) / r50_stages
    assert abs(ratio - 1 / 16) <= 0.15 / 16, ratio
    assert qr50.stem.conv1.weight.shape == (16, 3, 7, 7)
    # width_divisor=1 is exactly detectron2's ResNet-50
    assert _params(full) == _params(r50)


def _randomise_bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _quarter_width_torchvision_resnet50() -> torchvision.models.ResNet:
    """A torchvision-style ResNet50 with every width ÷ 4 (torchvision's own layer factory)."""
    Bottleneck = torchvision.models.resnet.Bottleneck
    net = torchvision.models.ResNet(Bottleneck, [3, 4, 6, 3], num_classes=10)
    net.inplanes = 16
    net.conv1 = nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(16)
    net.layer1 = net._make_layer(Bottleneck, 16, 3)
    net.layer2 = net._make_layer(Bottleneck, 32, 4, stride=2)
    net.layer3 = net._make_layer(Bottleneck, 64, 6, stride=2)
    net.layer4 = net._make_layer(Bottleneck, 128, 3, stride=2)
    net.fc = nn.Linear(512, 10)
    return net


def _tv_resnet_features(net, x):
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


CASES = {
    "mobilenet_v2": (
        lambda: torchvision.models.mobilenet_v2(weights=None),
        lambda net, x: net.features(x),
        lambda norm: build_mobilenetv2_backbone(norm=norm),
    ),
    "resnet50": (
        lambda: torchvision.models.resnet50(weights=None),
        _tv_resnet_features,
        lambda norm: build_resnet_width_backbone(depth=50, width_divisor=1, norm=norm),
    ),
    "qr50": (
        _quarter_width_torchvision_resnet50,
        _tv_resnet_features,
        lambda norm: build_resnet_width_backbone(depth=50, width_divisor=4, norm=norm),
    ),
}


@pytest.mark.parametrize("norm", ["BN", "FrozenBN"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_torchvision_weights_load_exactly(name, norm, tmp_path):
    make_tv, tv_features, make_ours = CASES[name]
    torch.manual_seed(0)
    net = _randomise_bn_stats(make_tv())
    path = tmp_path / f"{name}.pth"
    torch.save(net.state_dict(), path)
    ours = make_ours(norm)

    report = load_torchvision_weights(ours, path)

    file_keys = set(net.state_dict())
    classifier = {k for k in file_keys if k.startswith(("fc.", "classifier."))}
    counters = {k for k in file_keys if k.endswith("num_batches_tracked")}
    assert set(report.skipped) == (classifier | counters if norm == "FrozenBN" else classifier)
    assert classifier  # the classifier exists in the file and is reported
    target = ours.state_dict()
    assert set(report.loaded) == set(target)
    assert len(report.loaded) + len(report.skipped) == len(file_keys)
    file_state = net.state_dict()
    assert set(report.loaded.values()) == file_keys - set(report.skipped)
    for backbone_key, tv_key in report.loaded.items():
        assert torch.equal(target[backbone_key], file_state[tv_key]), (backbone_key, tv_key)
    # same network: same features in eval mode (checks names, strides and block layout)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval()(x)["res5"], tv_features(net, x), rtol=1e-4, atol=1e-4
        )


def test_full_width_resnet50_file_into_qr50_is_a_clear_shape_error(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(
        ValueError,
        match=r"(?s)conv1\.weight \(64, 3, 7, 7\) vs stem\.conv1\.weight \(16, 3, 7, 7\).*QR50",
    ):
        build_resnet_width_backbone(depth=50, width_divisor=4, weights=path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    model = build_resnet_width_backbone(depth=18, width_divisor=1)
    missing = dict(state)
    del missing["layer3.1.bn2.running_var"]
    with pytest.raises(
        ValueError, match=r"absent from the file: \[res4\.1\.conv2\.norm\.running_var\]"
    ):
        load_torchvision_weights(model, missing)
    extra = dict(state, **{"layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(
        ValueError, match=r"without a place in the backbone: \[layer5\.0\.conv1\.weight\]"
    ):
        load_torchvision_weights(model, extra)
    mobilenet = torchvision.models.mobilenet_v2(weights=None).state_dict()
    with pytest.raises(ValueError, match=r"features\.0\.0\.weight"):
        load_torchvision_weights(model, mobilenet)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_torchvision_weights(model, tmp_path / "nope.pth")


PARTS = ("stem", "res2", "res3", "res4", "res5")


@pytest.mark.parametrize("freeze_at", [0, 1, 3, 5])
@pytest.mark.parametrize("name", ["mobilenet_v2", "qr50"])
def test_freeze_at_freezes_exactly_the_stem_and_first_stages(name, freeze_at):
    builder, kwargs, _ = BOTTOM_UPS[name]
    model = builder(freeze_at=freeze_at, **kwargs)
    frozen = set(PARTS[:freeze_at])
    for param_name, p in model.named_parameters():
        assert p.requires_grad == (param_name.split(".")[0] not in frozen), param_name
    norms = {
        n: type(m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))
    }
    assert norms
    for module_name, kind in norms.items():
        expected = FrozenBatchNorm2d if module_name.split(".")[0] in frozen else nn.BatchNorm2d
        assert kind is expected, module_name


def test_frozen_parts_keep_loaded_weights(tmp_path):
    net = _randomise_bn_stats(torchvision.models.mobilenet_v2(weights=None))
    torch.save(net.state_dict(), tmp_path / "m.pth")
    model = build_mobilenetv2_backbone(freeze_at=2, weights=tmp_path / "m.pth")
    bn = model.res2[0].conv[0][1]  # torchvision features.2.conv.0.1
    assert isinstance(bn, FrozenBatchNorm2d)
    torch.testing.assert_close(bn.running_var, net.features[2].conv[0][1].running_var)
    assert isinstance(model.res3[0].conv[0][1], nn.BatchNorm2d)


def test_bad_arguments_are_explained():
    with pytest.raises(ConfigError, match=r"MobileNetV2: norm 'GN'.*\[16\]"):
        MobileNetV2(norm="GN")
    with pytest.raises(ConfigError, match=r"'GN'.*\[16\]"):
        build_resnet_width_backbone(depth=50, width_divisor=4, norm="GN")
    with pytest.raises(ConfigError, match="unknown norm ''"):
        build_resnet_width_backbone(norm="")
    with pytest.raises(ConfigError, match="width_divisor=3: must be a positive integer dividing 64"):
        build_resnet_width_backbone(width_divisor=3)
    with pytest.raises(ConfigError, match="model.backbone.depth=42: ResNet depth must be one of"):
        build_resnet_width_backbone(depth=42)
    with pytest.raises(ConfigError, match=r"out_features=\['p2'\] .*: must be a non-empty subset"):
        MobileNetV2(out_features=["p2"])
    # a callable norm is how GroupNorm works on these channel counts
    model = MobileNetV2(norm=lambda c: nn.GroupNorm(8, c), out_features=["res2"])
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())


def _tiny_batch(num_classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(2):
        image = torch.randint(0, 256, (3, 128, 96), generator=g, dtype=torch.uint8)
        xy = torch.rand(3, 2, generator=g) * torch.tensor([50.0, 70.0])
        wh = 16 + torch.rand(3, 2, generator=g) * 30
        instances = Instances((128, 96))
        instances.gt_boxes = Boxes(torch.cat([xy, xy + wh], dim=1))
        instances.gt_classes = torch.randint(0, num_classes, (3,), generator=g)
        batch.append({"image": image, "instances": instances})
    return batch


def _train_one_step(model_cfg, num_classes):
    torch.manual_seed(0)
    model = instantiate(model_cfg).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    with EventStorage(0):
        losses = model(_tiny_batch(num_classes))
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    optimizer.step()
    changed = [n for n, p in model.backbone.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("bottom_up.") for n in changed)
    return losses


BACKBONE_CONFIGS = {
    "mobilenet_v2": L(build_mobilenetv2_fpn_backbone)(norm="BN"),
    "qr50": L(build_resnet_width_fpn_backbone)(depth=50, width_divisor=4, norm="BN"),
}


@pytest.mark.parametrize("name", sorted(BACKBONE_CONFIGS))
def test_faster_rcnn_trains_one_step_with_each_fpn_backbone(name):
    model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
    model.backbone = BACKBONE_CONFIGS[name]
    model.roi_heads.update(num_classes=5, batch_size_per_image=64)
    model.roi_heads.update(mask_in_features=None, mask_pooler=None, mask_head=None)
    model.proposal_generator.update(pre_nms_topk=(200, 100), post_nms_topk=(100, 50))
    losses = _train_one_step(model, num_classes=5)
    assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)


def test_retinanet_trains_one_step_with_qr50_p3_to_p7():
    model = model_zoo.get_config("common/models/retinanet.py").model
    model.backbone = L(build_resnet_width_fpn_backbone)(
        in_features=["res3", "res4", "res5"],
        top_block=L(LastLevelP6P7)(in_channels=256, out_channels=256, in_feature="p5"),
    )
    model.num_classes = 5
    losses = _train_one_step(model, num_classes=5)
    assert set(losses) == {"loss_cls", "loss_box_reg"}

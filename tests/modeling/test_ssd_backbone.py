"""VGG16SSD: output shapes / strides for SSD300 and SSD512, torchvision weight loading."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from dicod_d2.errors import ConfigError
from dicod_d2.modeling.backbone.vgg import (
    VGG16SSD,
    L2Norm,
    reduce_fc_to_conv,
    vgg16_ssd_feature_shapes,
)
from dicod_d2.utils.state_dict import WeightsFileError

WIDTH = 0.125


@pytest.mark.parametrize(
    "size, sides, strides",
    [
        (300, [38, 19, 10, 5, 3, 1], [8, 16, 32, 64, 100, 300]),
        (512, [64, 32, 16, 8, 4, 2, 1], [8, 16, 32, 64, 128, 256, 512]),
    ],
)
def test_output_shapes_and_strides(size, sides, strides):
    torch.manual_seed(0)
    net = VGG16SSD(size, width=WIDTH, norm="BN").eval()
    shapes = net.output_shape()
    assert [s.stride for s in shapes.values()] == strides
    assert list(shapes.values()) == vgg16_ssd_feature_shapes(size, WIDTH)
    with torch.no_grad():
        out = net(torch.randn(1, 3, size, size))
    assert list(out) == list(shapes)
    for name, x in out.items():
        assert tuple(x.shape) == (1, shapes[name].channels, *(2 * [sides[list(out).index(name)]]))
    # channel counts of the full network
    full = vgg16_ssd_feature_shapes(size, 1.0)
    assert [s.channels for s in full[:3]] == [512, 1024, 512]
    assert all(s.channels == 256 for s in full[3:])


def test_too_small_input_names_the_minimum():
    net = VGG16SSD(300, width=WIDTH)
    with pytest.raises(ValueError, match=f">= {net.min_input_size}"):
        net(torch.zeros(1, 3, net.min_input_size - 1, 300))


def test_l2norm_scales_unit_vectors():
    layer = L2Norm(4)
    x = torch.randn(2, 4, 3, 3)
    y = layer(x)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, 3, 3), 20.0))
    torch.testing.assert_close(y / 20, x / x.norm(dim=1, keepdim=True))


def _save(state, path):
    torch.save(state, path)
    return path


def test_loads_torchvision_vgg16_and_reports_fc_layers(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = _save(state, tmp_path / "vgg16.pth")
    net = VGG16SSD(300)
    before = net.fc6.weight.clone()
    report = net.load_torchvision_weights(path)
    assert report.skipped == ["classifier.6.bias", "classifier.6.weight"]  # the 1000-way layer only
    assert len(report.loaded) == 30  # 13 convs + fc6 + fc7, x (weight, bias)
    assert "fc6.weight" in report.loaded and "conv4_3_norm.weight" in report.not_in_file
    torch.testing.assert_close(net.conv1_1.weight, state["features.0.weight"])
    torch.testing.assert_close(net.conv4_3.bias, state["features.21.bias"])
    torch.testing.assert_close(net.conv5_3.weight, state["features.28.weight"])
    # SSD's subsampling: fc6 = every 4th unit and every 3rd tap of the 7x7 fc6, fc7 every 4th unit
    assert net.fc6.weight.shape == (1024, 512, 3, 3) and net.fc7.weight.shape == (1024, 1024, 1, 1)
    assert not torch.equal(net.fc6.weight, before)
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    for o, c, i, j in ((0, 0, 0, 0), (1, 7, 1, 2), (1023, 511, 2, 2)):
        assert net.fc6.weight[o, c, i, j] == fc6[4 * o, c, 3 * i, 3 * j]
    assert net.fc6.bias[5] == state["classifier.0.bias"][20]
    assert net.fc7.weight[3, 9, 0, 0] == state["classifier.3.weight"][12, 36]
    assert net.fc7.bias[1023] == state["classifier.3.bias"][4092]
    # the constructor argument loads the same file
    torch.testing.assert_close(VGG16SSD(300, weights=str(path)).conv3_2.weight, state["features.12.weight"])


def test_loads_torchvision_vgg16_bn_layout(tmp_path):
    """norm="BN" maps torchvision's vgg16_bn layout (conv, bn, relu): BatchNorm statistics too."""
    cfg = torchvision.models.vgg.cfgs["D"]
    features = torchvision.models.vgg.make_layers(cfg, batch_norm=True)
    for m in features.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    net = VGG16SSD(300, norm="BN")
    report = net.load_torchvision_weights(_save(state, tmp_path / "vgg16_bn.pth"))
    assert report.skipped == [] and len(report.loaded) == 13 * 7
    torch.testing.assert_close(net.conv5_3.norm.running_mean, state["features.41.running_mean"])
    torch.testing.assert_close(net.conv2_1.weight, state["features.7.weight"])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("features.26.bias"), "features.26.bias"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), "extra.weight"),
    ],
)
def test_missing_or_unexpected_keys_are_named(tmp_path, edit, message):
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    edit(state)
    with pytest.raises(ConfigError, match=f"is not a torchvision VGG16 state dict.*{message}"):
        VGG16SSD(300).load_torchvision_weights(_save(state, tmp_path / "w.pth"))


def test_slim_width_cannot_take_full_weights(tmp_path):
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    with pytest.raises(ConfigError, match="shape mismatch loading .*width=1.0"):
        VGG16SSD(300, width=0.5).load_torchvision_weights(_save(state, tmp_path / "w.pth"))


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 not really a state dict", "cannot read VGG16 weight file '.*w.pth' .*: it is truncated, corrupt"),
    (None, "is not a flat state dict .*: entries \\[iteration\\] are not tensors"),
])
def test_unreadable_or_non_state_dict_weight_file_is_a_weights_file_error(tmp_path, content, message):
    """A weight file given in the config that torch cannot read (or a training checkpoint): a
    one-line user error, still a ValueError as before."""
    path = tmp_path / "w.pth"
    if content is None:
        torch.save({"conv.weight": torch.zeros(1), "iteration": 5}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=message) as info:
        VGG16SSD(300, width=WIDTH, norm="BN").load_torchvision_weights(path)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_fc_subsampling_keeps_a_spatially_constant_response(tmp_path):
    """On a map that is constant over space, the 7x7 fc6 sums its 49 taps and the subsampled 3x3
    one its 9: per kept unit, fc6 responds like (9/49) of the fc layer when the fc weight is
    constant over space (a property of subsampling, not of any particular values)."""
    hidden, channels = 16, 8
    w6 = torch.randn(hidden, channels, 1, 1).expand(hidden, channels, 7, 7).reshape(hidden, -1)
    state = {"classifier.0.weight": w6, "classifier.0.bias": torch.randn(hidden),
             "classifier.3.weight": torch.randn(hidden, hidden), "classifier.3.bias": torch.randn(hidden)}
    fc = reduce_fc_to_conv(state, fc_channels=4)
    x = torch.randn(1, channels, 1, 1).expand(1, channels, 7, 7)
    full = F.linear(x.reshape(1, -1), w6)[0, ::4]
    conv = F.conv2d(x, fc["fc6.weight"], padding=1)[0, :, 3, 3]  # an inner position: all 9 taps
    torch.testing.assert_close(conv, full * 9 / 49)
    with pytest.raises(ConfigError, match="cannot subsample"):
        reduce_fc_to_conv(state, fc_channels=5)

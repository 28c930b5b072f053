"""KD_loc pooled L1 terms (the paper's localization distillation, Section 3) against a direct loop."""
import numpy as np
import pytest
import torch

from dicod_d2.errors import ConfigError, UserError
from dicod_d2.losses import default_loc_pools, loc_feature_loss, loc_pixel_loss


def _loop_pooled_l1(pred, gt, pool):
    """Σ_k Σ |block-mean(pred) − block-mean(gt)| / (C·pool²) for sides divisible by pool."""
    k, c, h, w = pred.shape
    total = 0.0
    for i in range(k):
        l1 = 0.0
        for ch in range(c):
            for a in range(pool):
                for b in range(pool):
                    sl = (ch, slice(a * h // pool, (a + 1) * h // pool), slice(b * w // pool, (b + 1) * w // pool))
                    l1 += abs(pred[i][sl].mean() - gt[i][sl].mean())
        total += l1 / (c * pool * pool)
    return total


def test_default_pools():
    assert default_loc_pools(2) == (4, 8)
    assert default_loc_pools(4) == (4, 8, 16, 32)


def test_pixel_loss_matches_loop():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 3, 12, 12, generator=g, dtype=torch.float64)
    gt = torch.rand(3, 3, 12, 12, generator=g, dtype=torch.float64)
    got = loc_pixel_loss(pred, gt, pool=4)
    assert got.item() == pytest.approx(_loop_pooled_l1(pred.numpy(), gt.numpy(), 4), rel=1e-12)


def test_feature_loss_is_mean_over_layers_and_gt_is_detached():
    g = torch.Generator().manual_seed(1)
    pred = {"stem": torch.rand(2, 5, 16, 16, generator=g, dtype=torch.float64, requires_grad=True),
            "stage1": torch.rand(2, 7, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)}
    gt = {n: torch.rand(v.shape, generator=g, dtype=torch.float64, requires_grad=True) for n, v in pred.items()}
    got = loc_feature_loss(pred, gt, ["stem", "stage1"], [8, 4])
    expected = np.mean([
        _loop_pooled_l1(pred["stem"].detach().numpy(), gt["stem"].detach().numpy(), 8),
        _loop_pooled_l1(pred["stage1"].detach().numpy(), gt["stage1"].detach().numpy(), 4),
    ])
    assert got.item() == pytest.approx(expected, rel=1e-12)
    got.backward()
    assert all(v.grad is not None for v in pred.values())
    assert all(v.grad is None for v in gt.values())


def test_zero_for_identical_crops_and_empty_batch():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    assert loc_pixel_loss(x, x.detach()).item() == 0.0
    empty = torch.zeros(0, 3, 8, 8, requires_grad=True)
    loss = loc_pixel_loss(empty, empty.detach())
    assert loss.item() == 0.0 and loss.requires_grad


def test_bad_inputs_raise():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ConfigError, match="one pool size per layer"):
        loc_feature_loss({"stem": x}, {"stem": x}, ["stem"], [4, 8])
    with pytest.raises(KeyError, match="missing"):
        loc_feature_loss({"stem": x}, {"stem": x}, ["stage1"], [4])
    with pytest.raises(ValueError, match="same K and C") as info:
        loc_pixel_loss(x, x[:1])
    assert not isinstance(info.value, UserError)  # a shape mismatch is a bug


@pytest.mark.parametrize("pool", [0, -2])
def test_non_positive_pool_size_is_a_config_error(pool):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ConfigError, match=rf"'pixels': pool size must be a positive integer, got {pool}.*loc_pools"):
        loc_pixel_loss(x, x, pool)
    with pytest.raises(ConfigError, match=rf"'stem': pool size .* got {pool}"):
        loc_feature_loss({"stem": x}, {"stem": x}, ["stem"], [pool])

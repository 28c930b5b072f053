import pytest
import torch

from dicod_d2.solver import SGDClipGradNorm


def _step(opt_cls, grad_scale, **kw):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = opt_cls([w], lr=0.1, **kw)
    w.grad = torch.full((5,), grad_scale)
    before = w.detach().clone()
    opt.step()
    return before, w.detach()


def test_large_gradient_is_clipped_to_the_bound():
    before, after = _step(SGDClipGradNorm, 10.0, max_grad_norm=1.0)
    # the step is lr * clipped grad: norm 0.1 * 1.0
    assert torch.linalg.vector_norm(after - before).item() == pytest.approx(0.1, rel=1e-5)


def test_small_gradient_is_plain_sgd():
    b1, a1 = _step(SGDClipGradNorm, 0.01, max_grad_norm=1.0, momentum=0.9)
    b2, a2 = _step(torch.optim.SGD, 0.01, momentum=0.9)
    assert torch.equal(b1, b2) and torch.allclose(a1, a2)


def test_bad_bound_is_refused():
    with pytest.raises(ValueError, match="max_grad_norm"):
        SGDClipGradNorm([torch.nn.Parameter(torch.zeros(1))], lr=0.1, max_grad_norm=0)

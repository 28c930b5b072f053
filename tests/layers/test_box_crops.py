"""Box crops (sample points kept off integer pixel positions where gradients are checked): roi_align vs per-box reference, roi_align vs differentiable crop, gradients, memory."""
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from dicod_d2.errors import ConfigError, UserError
from dicod_d2.layers import crop_boxes_differentiable, crop_boxes_roi_align, prepare_boxes


def _bilinear_reference(image: np.ndarray, box, size: int) -> np.ndarray:
    """Per-box loop: sample [C, s, s] at x1 + (j+0.5)(x2-x1)/s (pixel centres at i+0.5), border clamp."""
    c, h, w = image.shape
    x1, y1, x2, y2 = box
    out = np.zeros((c, size, size))
    for i in range(size):
        y = min(max(y1 + (i + 0.5) * (y2 - y1) / size - 0.5, 0.0), h - 1.0)
        for j in range(size):
            x = min(max(x1 + (j + 0.5) * (x2 - x1) / size - 0.5, 0.0), w - 1.0)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            xa, ya = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            fx, fy = x - x0, y - y0
            out[:, i, j] = (
                image[:, y0, x0] * (1 - fx) * (1 - fy)
                + image[:, y0, xa] * fx * (1 - fy)
                + image[:, ya, x0] * (1 - fx) * fy
                + image[:, ya, xa] * fx * fy
            )
    return out


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 17, 23, generator=g, dtype=torch.float64) * 255
    boxes = torch.tensor(
        [
            [1.3, 2.2, 10.7, 15.1],  # inside
            [0.0, 0.0, 23.0, 17.0],  # whole image
            [-5.0, -5.0, 3.0, 4.0],  # crosses the top-left border
            [20.0, 12.0, 40.0, 40.0],  # crosses the bottom-right border
            [5.0, 5.0, 5.0, 5.0],  # zero size
            [8.0, 9.0, 3.0, 2.0],  # inverted
            [100.0, 100.0, 120.0, 130.0],  # far outside
            [2.5, 3.5, 4.0, 14.0],  # thin
        ],
        dtype=torch.float64,
    )
    batch_index = torch.tensor([0, 1, 1, 0, 1, 0, 1, 0])
    return images, boxes, batch_index


def test_roi_align_matches_per_box_loop(batch):
    images, boxes, batch_index = batch
    crops = crop_boxes_roi_align(images, boxes, batch_index, 5)
    assert crops.shape == (8, 3, 5, 5)
    prepared = prepare_boxes(boxes, 17, 23)
    for k in range(len(boxes)):
        ref = _bilinear_reference(images[batch_index[k]].numpy(), prepared[k].tolist(), 5)
        np.testing.assert_allclose(crops[k].numpy(), ref, rtol=1e-9, atol=1e-9)


def test_whole_image_crop_at_full_size_is_the_image(batch):
    images, _, _ = batch
    square = images[:, :, :17, :17]
    box = torch.tensor([[0.0, 0.0, 17.0, 17.0]], dtype=torch.float64)
    for crop_fn in (crop_boxes_differentiable, crop_boxes_roi_align):
        torch.testing.assert_close(crop_fn(square, box, torch.tensor([1]), 17)[0], square[1])


def test_both_crops_sample_the_same_points(batch):
    images, boxes, batch_index = batch
    a = crop_boxes_roi_align(images, boxes, batch_index, 6)
    b = crop_boxes_differentiable(images, boxes, batch_index, 6)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-9)
    # float32 too, with many boxes in shuffled image order
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=g) * 20
    wh = torch.rand(50, 2, generator=g) * 15
    boxes32 = torch.cat([xy, xy + wh], 1)
    index = torch.randint(0, 2, (50,), generator=g)
    a = crop_boxes_roi_align(images.float(), boxes32, index, 7)
    b = crop_boxes_differentiable(images.float(), boxes32, index, 7)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-3)


def test_prepare_boxes_clips_and_enforces_min_size():
    boxes = torch.tensor([[-3.0, 2.0, 50.0, 8.0], [5.0, 5.0, 5.0, 5.0], [8.0, 9.0, 3.0, 2.0]])
    out = prepare_boxes(boxes, 10, 20)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 2.0, 20.0, 8.0]))
    torch.testing.assert_close(out[1], torch.tensor([4.5, 4.5, 5.5, 5.5]))
    torch.testing.assert_close(out[2], torch.tensor([5.0, 5.0, 6.0, 6.0]))


def test_gradcheck_wrt_boxes(batch):
    images, _, _ = batch
    boxes = torch.tensor(
        [[1.3, 2.2, 10.7, 15.1], [4.1, 0.7, 19.3, 9.9], [7.7, 3.3, 12.2, 16.3]], dtype=torch.float64
    ).requires_grad_()
    index = torch.tensor([1, 0, 1])
    assert torch.autograd.gradcheck(
        lambda b: crop_boxes_differentiable(images, b, index, 4), (boxes,), eps=1e-6, atol=1e-5
    )
    img = images[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda im: crop_boxes_differentiable(im, boxes.detach()[:2], torch.tensor([0, 0]), 3), (img,)
    )


def test_differentiable_crop_does_not_depend_on_box_order(batch):
    """Grouped (fast path, no reorder) and interleaved orders give the same crops and gradients per box."""
    images, boxes, batch_index = batch
    weights = torch.linspace(-1, 1, len(boxes) * 3 * 5 * 5, dtype=images.dtype).view(len(boxes), 3, 5, 5)

    def crops_and_grads(order):
        b = boxes[order].clone().requires_grad_()
        img = images.clone().requires_grad_()
        crops = crop_boxes_differentiable(img, b, batch_index[order], 5)
        (crops * weights[order]).sum().backward()
        inverse = torch.argsort(order)
        return crops.detach()[inverse], b.grad[inverse], img.grad

    grouped = torch.argsort(batch_index, stable=True)
    assert (batch_index[grouped].diff() >= 0).all() and not (batch_index.diff() >= 0).all()
    results = [crops_and_grads(o) for o in (torch.arange(len(boxes)), grouped, torch.randperm(len(boxes)))]
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b)
    assert results[0][1].abs().sum() > 0 and results[0][2].abs().sum() > 0


def test_degenerate_border_and_outside_boxes_give_finite_values_and_gradients(batch):
    images, boxes, batch_index = batch
    boxes = boxes.clone().requires_grad_()
    crops = crop_boxes_differentiable(images, boxes, batch_index, 5)
    assert torch.isfinite(crops).all()
    (crops * torch.linspace(0, 1, crops.numel(), dtype=crops.dtype).view_as(crops)).sum().backward()
    assert torch.isfinite(boxes.grad).all()
    assert boxes.grad[0].abs().min() > 0  # an inside box moves on all four coordinates
    assert (boxes.grad[6] == 0).all()  # a far-outside box is clipped: no gradient, no NaN
    assert boxes.grad[4].abs().sum() > 0  # a zero-size box still moves through its centre


def test_non_finite_boxes_never_reach_the_sampler():
    # grid_sample's CPU backward crashes the process (SIGSEGV) on a NaN grid: run in a child process
    code = textwrap.dedent("""
        import torch
        from dicod_d2.layers import crop_boxes_differentiable, crop_boxes_roi_align, prepare_boxes
        nan, inf = float("nan"), float("inf")
        images = torch.rand(2, 3, 16, 16, requires_grad=True)
        boxes = torch.tensor([[1.0, 2.0, 9.0, 12.0], [nan, 3.0, 8.0, nan], [-inf, 1.0, inf, 5.0]],
                             requires_grad=True)
        index = torch.tensor([0, 0, 1])
        assert torch.isfinite(prepare_boxes(boxes, 16, 16)).all()
        assert torch.isfinite(crop_boxes_roi_align(images, boxes, index, 4)).all()
        crops = crop_boxes_differentiable(images, boxes, index, 4)
        assert torch.isfinite(crops).all()
        crops.sum().backward()
        assert torch.isfinite(boxes.grad).all() and torch.isfinite(images.grad).all()
        assert boxes.grad[1, 0] == 0 and boxes.grad[1, 3] == 0  # the NaN coordinates
        assert boxes.grad[0].abs().min() > 0
        print("finite")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit code {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "finite"


def test_empty_inputs(batch):
    images, _, _ = batch
    empty = torch.zeros(0, 4, dtype=torch.float64)
    index = torch.zeros(0, dtype=torch.long)
    assert crop_boxes_roi_align(images, empty, index, 4).shape == (0, 3, 4, 4)
    assert crop_boxes_differentiable(images, empty, index, 4).shape == (0, 3, 4, 4)


def test_bad_inputs_raise(batch):
    images, boxes, batch_index = batch
    with pytest.raises(ValueError, match="batch_index values"):
        crop_boxes_differentiable(images, boxes, batch_index + 1, 4)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        crop_boxes_roi_align(images, boxes[:, :3], batch_index, 4)
    with pytest.raises(ValueError, match="float") as info:
        crop_boxes_roi_align(images.to(torch.uint8), boxes, batch_index, 4)
    assert not isinstance(info.value, UserError)  # tensors between our functions: a bug


@pytest.mark.parametrize("crop", [crop_boxes_roi_align, crop_boxes_differentiable])
def test_non_positive_crop_size_is_a_config_error(batch, crop):
    images, boxes, batch_index = batch
    with pytest.raises(ConfigError, match=r"crop size must be a positive integer, got -1.*model\.distiller\.crop_size"):
        crop(images, boxes, batch_index, -1)


def test_differentiable_crop_memory_is_independent_of_image_copies():
    """512 boxes of a 1333x800 image: a per-box image copy would allocate 512x3x800x1333 floats (6.5 GB)."""
    torch.set_num_threads(1)
    image = torch.rand(1, 3, 800, 1333)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(512, 2, generator=g) * torch.tensor([1200.0, 700.0])
    boxes = torch.cat([xy, xy + 10 + torch.rand(512, 2, generator=g) * 100], 1).requires_grad_()
    index = torch.zeros(512, dtype=torch.long)
    size = 16
    start = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        crops = crop_boxes_differentiable(image, boxes, index, size)
        crops.sum().backward()
    elapsed = time.perf_counter() - start
    largest = max(e.cpu_memory_usage for e in prof.key_averages())
    crop_bytes = 512 * 3 * size * size * 4
    assert largest < 8 * crop_bytes + image.numel() * 4, largest  # O(N s^2) + one image gradient
    assert elapsed < 10.0


def _operator_calls(images, boxes, batch_index, size):
    """Per operator name, the calls the profiler records for a crop's forward and backward to the boxes
    (every ``aten::`` operator, nested ones included). As in training, the images need no gradient."""
    boxes = boxes.clone().requires_grad_()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        crop_boxes_differentiable(images, boxes, batch_index, size).sum().backward()
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}


def test_differentiable_crop_launches_the_same_operators_for_any_number_of_images():
    """One sampler call for the whole batch: the operators do not grow with the images or the boxes,
    and nothing is read back to the host (no ``item`` / ``nonzero`` / ``bincount``)."""
    g = torch.Generator().manual_seed(0)
    calls = {}
    for num_images in (1, 2, 8):
        images = torch.rand(num_images, 3, 20, 24, generator=g)
        xy = torch.rand(16, 2, generator=g) * 15
        boxes = torch.cat([xy, xy + 2 + torch.rand(16, 2, generator=g) * 8], 1)
        index = torch.randint(0, num_images, (16,), generator=g)  # interleaved, some images without boxes
        calls[num_images] = _operator_calls(images, boxes, index, 5)
    assert calls[1] == calls[2] == calls[8]
    assert calls[8]["aten::grid_sampler_2d"] == calls[8]["aten::grid_sampler_2d_backward"] == 1
    host_reads = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::bincount")
    # the batch_index range check reads one value, on CPU only (costs no device synchronisation)
    assert sum(calls[8].get(name, 0) for name in host_reads) <= 2
    more_boxes = _operator_calls(images, torch.cat([boxes, boxes]), torch.cat([index, index]), 5)
    assert more_boxes == calls[8]


@pytest.mark.parametrize("crop", [crop_boxes_roi_align, crop_boxes_differentiable])
def test_check_index_false_skips_the_range_check_and_its_host_read(batch, crop):
    """For indices the caller builds in range (the distiller's gt boxes): no read of their values."""
    images, boxes, batch_index = batch
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        unchecked = crop(images, boxes, batch_index, 4, check_index=False)
    assert not [e for e in prof.events() if e.name in ("aten::_local_scalar_dense", "aten::nonzero")]
    torch.testing.assert_close(unchecked, crop(images, boxes, batch_index, 4), rtol=0, atol=0)
    with pytest.raises(ValueError, match="batch_index values"):
        crop(images, boxes, batch_index + 1, 4)

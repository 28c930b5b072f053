"""Images read like detectron2's read_image (EXIF rotation, grayscale, RGBA) plus 16-bit PNGs; a
non-image is a typed error naming the file."""
import numpy as np
import pytest
from PIL import Image

from dicod_d2.inference.images import UnreadableImage, read_image


def _save(path, array):
    Image.fromarray(array).save(path)
    return path


def test_channel_orders_grayscale_and_rgba(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 10
    path = _save(tmp_path / "c.png", rgb)
    assert read_image(path, "RGB")[0, 0].tolist() == [200, 0, 10]
    assert read_image(path, "BGR")[0, 0].tolist() == [10, 0, 200]
    gray = _save(tmp_path / "g.png", np.full((5, 7), 77, np.uint8))
    assert read_image(gray, "BGR").shape == (5, 7, 3) and (read_image(gray, "BGR") == 77).all()
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 30, np.uint8)], axis=2)
    assert read_image(_save(tmp_path / "a.png", rgba), "RGB")[0, 0].tolist() == [200, 0, 10]


def test_exif_rotation(tmp_path):
    image = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg", "RGB").shape == (30, 10, 3)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out = read_image(tmp_path / "d.png", "RGB")
    assert out[0, :, 0].tolist() == [0, 128, 255] and (out[..., 0] == out[..., 2]).all()


def test_non_image_and_truncated_files(tmp_path):
    (tmp_path / "x.jpg").write_text("not an image")
    with pytest.raises(UnreadableImage, match="x.jpg"):
        read_image(tmp_path / "x.jpg", "BGR")
    _save(tmp_path / "t.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="t.jpg"):
        read_image(tmp_path / "t.jpg", "BGR")

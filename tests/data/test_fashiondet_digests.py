"""The generated tiny FashionDet has the reference bytes (``SPLIT_SHA256``), and a split whose bytes
differ is named in one error line."""
import importlib.util
import shutil

import pytest
from _helpers import REPO

from dicod_d2.data.fashiondet import SPLIT_SHA256, DataDigestError, split_sha256, verify_fashiondet
from dicod_d2.errors import ConfigError


def test_the_tiny_split_has_the_reference_digests(tiny_fashiondet):
    assert verify_fashiondet(tiny_fashiondet, "tiny") == SPLIT_SHA256["tiny"]
    assert set(SPLIT_SHA256["tiny"]) == {"train", "val", "test"}


@pytest.mark.parametrize("changed", ["image", "json", "renamed"])
def test_a_split_with_other_bytes_is_named(tiny_fashiondet, tmp_path, changed):
    copy = tmp_path / "fashiondet_tiny"
    shutil.copytree(tiny_fashiondet, copy)
    image = copy / "val/000003.jpg"
    if changed == "image":
        data = bytearray(image.read_bytes())
        data[-10] ^= 1
        image.write_bytes(bytes(data))
    elif changed == "json":
        json_file = copy / "annotations/instances_val.json"
        json_file.write_text(json_file.read_text() + " ")
    else:  # the same bytes under another name count as other data
        image.rename(copy / "val/000099.jpg")
    assert split_sha256(copy, "train") == SPLIT_SHA256["tiny"]["train"]
    with pytest.raises(DataDigestError, match=r"FashionDet tiny split 'val' .* has sha256 [0-9a-f]{64}, not the reference .*make setup") as info:
        verify_fashiondet(copy, "tiny")
    assert "\n" not in str(info.value)


def test_a_preset_without_reference_digests_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no reference digests for FashionDet preset 'quick'"):
        verify_fashiondet(tmp_path, "quick")


def _cli():
    spec = importlib.util.spec_from_file_location("make_fashiondet", REPO / "tools/make_fashiondet.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_the_cli_verifies_the_generated_splits(tiny_fashiondet, tmp_path, capsys):
    shutil.copytree(tiny_fashiondet, tmp_path / "fashiondet_tiny")  # up to date: not generated again
    _cli().main(["--preset", "tiny", "--root", str(tmp_path), "--verify"])
    out = capsys.readouterr().out
    for split, digest in SPLIT_SHA256["tiny"].items():
        assert f"{split}: sha256 {digest} (the reference)" in out
    with pytest.raises(ConfigError, match="--verify checks the preset's own splits"):
        _cli().main(["--preset", "tiny", "--root", str(tmp_path), "--seed", "1", "--verify"])

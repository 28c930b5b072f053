"""read_state_dict: the one reader of pretrained weight files; a file that cannot be used is a
one-line user error (WeightsFileError: a CheckpointError, and a ValueError as before)."""
import re

import pytest
import torch

from dicod_d2.errors import CheckpointError, UserError
from dicod_d2.utils.state_dict import WeightsFileError, read_state_dict


def test_reads_a_state_dict_and_unwraps_state_dict(tmp_path):
    state = {"conv.weight": torch.ones(2, 3)}
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    read, source = read_state_dict(tmp_path / "w.pth")
    assert source == str(tmp_path / "w.pth") and torch.equal(read["conv.weight"], state["conv.weight"])
    assert read_state_dict(state) == (state, "<state dict>")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02 pickle garbage"])
def test_a_file_torch_cannot_read(tmp_path, content):
    path = tmp_path / "w.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=rf"cannot read init weights file '{re.escape(str(path))}' \(.*\): it is "
                                               "truncated, corrupt or not a torch file") as info:
        read_state_dict(path, what="init weights file")
    error = info.value
    assert isinstance(error, UserError) and isinstance(error, CheckpointError) and isinstance(error, ValueError)
    assert "\n" not in str(error)  # one error line


def test_a_training_checkpoint_is_not_a_flat_state_dict(tmp_path):
    torch.save({"model": {"conv.weight": torch.ones(1)}, "iteration": 9}, tmp_path / "model_final.pth")
    with pytest.raises(WeightsFileError, match=r"is not a flat state dict .*: entries \[model, iteration\]"):
        read_state_dict(tmp_path / "model_final.pth")


def test_a_missing_file_names_the_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match="VGG16 weight file '.*nope.pth' does not exist. Give one"):
        read_state_dict(tmp_path / "nope.pth", what="VGG16 weight file", hint="Give one.")

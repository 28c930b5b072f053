"""Resuming after a killed save or from a truncated or deleted checkpoint."""
import pytest
import torch

from dicod_d2.engine.checkpoint import AtomicCheckpointer


def _checkpointer(folder, value: float) -> AtomicCheckpointer:
    model = torch.nn.Linear(2, 1)
    torch.nn.init.constant_(model.weight, value)
    return AtomicCheckpointer(model, str(folder))


def _save_three(folder):
    for it in (1, 3, 5):
        _checkpointer(folder, float(it)).save(f"model_{it:07d}", iteration=it)


def _resume(folder) -> tuple:
    ckpt = _checkpointer(folder, 0.0)
    loaded = ckpt.resume_or_load("", resume=True)
    return loaded.get("iteration"), float(ckpt.model.weight[0, 0])


def test_resume_skips_a_truncated_last_checkpoint(tmp_path):
    _save_three(tmp_path)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000005.pth"
    last = tmp_path / "model_0000005.pth"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    assert _resume(tmp_path) == (3, 3.0)


def test_resume_after_the_last_checkpoint_was_deleted(tmp_path):
    _save_three(tmp_path)
    (tmp_path / "model_0000005.pth").unlink()
    assert _resume(tmp_path) == (3, 3.0)


def test_no_complete_checkpoint_says_what_to_delete(tmp_path):
    _checkpointer(tmp_path, 1.0).save("model_0000001", iteration=1)
    (tmp_path / "model_0000001.pth").write_bytes(b"truncated")
    with pytest.raises(FileNotFoundError, match="truncated, and the folder holds no complete checkpoint: "
                                                "delete last_checkpoint"):
        _resume(tmp_path)


def test_temporary_file_of_a_killed_save_is_removed(tmp_path):
    _save_three(tmp_path)
    stale = tmp_path / ".model_0000007.pth.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    ckpt = _checkpointer(tmp_path, 0.0)
    ckpt.remove_stale_temporaries()
    assert not stale.exists() and (tmp_path / "model_0000005.pth").exists()
    assert _resume(tmp_path) == (5, 5.0)

"""A detectron2 checkpointer that writes atomically and explains unreadable files."""
from __future__ import annotations

import os

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..errors import CheckpointError
from ..utils.io import atomic_path, atomic_write_text


class AtomicCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` whose ``save`` never leaves a half-written ``.pth`` behind.

    It also creates the output folder (fvcore's ``save`` does not) and turns a corrupt or
    truncated checkpoint into one error that names the file.
    """

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                torch.save(data, f)
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), os.path.basename(path))

    def load(self, path: str, checkpointables=None):
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(
                f"checkpoint '{path}' does not exist: check train.init_checkpoint "
                "(or the output folder's last_checkpoint when resuming)"
            )
        return super().load(path, checkpointables)

    def _load_file(self, filename: str):
        try:
            return super()._load_file(filename)
        except Exception as e:  # truncated zip, pickle garbage, wrong format
            raise CheckpointError(
                f"checkpoint '{filename}' is corrupt or truncated and cannot be read "
                f"({type(e).__name__}: {e}). Delete it and resume from an earlier checkpoint, "
                "or train again."
            ) from e

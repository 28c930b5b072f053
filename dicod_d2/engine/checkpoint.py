"""A detectron2 checkpointer that writes atomically and explains unreadable files."""
from __future__ import annotations

import glob
import os
import re
import zipfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..errors import CheckpointError
from ..utils.io import atomic_path, atomic_write_text


class AtomicCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` whose ``save`` never leaves a half-written ``.pth`` behind.

    It also creates the output folder (fvcore's ``save`` does not) and turns a corrupt or
    truncated checkpoint into one error that names the file. On resume, a ``last_checkpoint`` that
    names a missing or truncated file falls back to the newest complete checkpoint of the folder,
    and the temporary files of a save killed midway are removed.
    """

    def remove_stale_temporaries(self) -> None:
        """Delete the ``.model_*.pth.*.tmp`` files left by a save that was killed (one writer only)."""
        if not self.save_dir:
            return
        for tmp in glob.glob(os.path.join(self.save_dir, ".*.pth.*.tmp")):
            self.logger.warning("Removing %s, left by an interrupted checkpoint save", tmp)
            os.remove(tmp)

    def get_checkpoint_file(self) -> str:
        """The checkpoint to resume from: ``last_checkpoint``'s file when it is complete, else the
        newest complete checkpoint of the folder (by iteration; ``model_final.pth`` last), else "".

        Raises:
            FileNotFoundError: ``last_checkpoint`` names a missing or truncated file and the folder
                holds no complete checkpoint.
        """
        named = super().get_checkpoint_file()
        if named and _is_complete(named):
            return named
        candidates = sorted(glob.glob(os.path.join(self.save_dir, "*.pth")), key=_save_order)
        complete = [path for path in candidates if _is_complete(path)]
        if not named:
            return complete[-1] if complete else ""
        state = "truncated" if os.path.isfile(named) else "missing"
        if not complete:
            raise FileNotFoundError(
                f"{os.path.join(self.save_dir, 'last_checkpoint')} names {named}, which is {state}, "
                "and the folder holds no complete checkpoint: delete last_checkpoint (and the file) "
                "to train from the start, or point train.output_dir at another run"
            )
        self.logger.warning("last_checkpoint names %s, which is %s; resuming from %s",
                            named, state, complete[-1])
        return complete[-1]

    def load_fitting(self, path: str, *, model_name: str, partial: bool = False,
                     fix: str = "Use the config the model was trained with.") -> None:
        """Load the model weights of checkpoint ``path`` (not its optimizer, scheduler, iteration),
        refusing a checkpoint of another model.

        detectron2's ``load`` only warns about model weights the file lacks or holds in another
        shape, so another model's checkpoint would leave random weights in place and still give
        results. Here such a file is an error, unless ``partial`` (e.g. backbone-only weights),
        where the weights left as initialised are logged.

        Args:
            path: the checkpoint (``model_final.pth``, a detectron2 model file); "" loads nothing.
            model_name: how the error names the model (e.g. "the model of 'configs/...py'").
            partial: load the weights that fit and log the others instead of raising.
            fix: the end of the error message: what to do.
        Raises:
            FileNotFoundError: no such file. :class:`CheckpointError`: unreadable, or of another
            model (weights missing or of another shape) and not ``partial``.
        """
        if not path:
            return
        if "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint '{path}' does not exist: check train.init_checkpoint")
        local = path if os.path.isfile(path) else self.path_manager.get_local_path(path)
        incompatible = self._load_model(self._load_file(local))
        missing = [] if incompatible is None else (
            incompatible.missing_keys + [k for k, *_ in incompatible.incorrect_shapes])
        if missing and not partial:
            raise CheckpointError(
                f"checkpoint '{path}' does not fit {model_name}: {len(missing)} weights missing or of "
                f"another shape (e.g. {missing[0]}). {fix}"
            )
        if missing:
            self.logger.warning("Partial load of %s: %d weights of the model are not in it or of another "
                                "shape and keep their initial values (e.g. %s)", path, len(missing),
                                ", ".join(missing[:5]))

    def has_checkpoint(self) -> bool:
        return bool(self.get_checkpoint_file())

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


def finished_iteration(output_dir: str) -> int | None:
    """The last finished iteration of the checkpoint that ``--resume`` into ``output_dir`` continues
    from, or None when the folder holds no checkpoint (or one without an iteration)."""
    path = AtomicCheckpointer(torch.nn.Module(), output_dir).get_checkpoint_file()
    if not path:
        return None
    try:
        iteration = torch.load(path, map_location="cpu", mmap=True, weights_only=False).get("iteration")
    except Exception as e:  # the resume itself reports an unreadable checkpoint
        raise CheckpointError(f"checkpoint '{path}' is corrupt or truncated and cannot be read "
                              f"({type(e).__name__}: {e}). Delete it and resume from an earlier "
                              "checkpoint, or train again.") from e
    return None if iteration is None else int(iteration)


def _is_complete(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` zip archive (a truncated one lacks its directory)."""
    return os.path.isfile(path) and zipfile.is_zipfile(path)


def _save_order(path: str) -> tuple:
    """Sort key of checkpoint files: ``model_<iteration>.pth`` by iteration, then ``*_final.pth``."""
    name = os.path.basename(path)
    match = re.fullmatch(r".*_(\d+)\.pth", name)
    if match:
        return (0, int(match.group(1)), os.path.getmtime(path))
    return (1, 0, os.path.getmtime(path))

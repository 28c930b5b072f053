"""Read a local torchvision-format state dict (never downloads): the one reader of the student
backbones' and the teachers' pretrained weights."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from ..errors import CheckpointError, one_line

__all__ = ["WeightsFileError", "read_state_dict"]

_MAX_LISTED = 12


class WeightsFileError(CheckpointError, ValueError):
    """A weights file (a backbone's or a teacher's pretrained state dict) that torch cannot read, or
    that is not a flat state dict. Also a ValueError, what this reader raised before."""


def read_state_dict(
    weights: str | os.PathLike | Mapping[str, torch.Tensor], what: str = "weights file", hint: str = ""
) -> tuple[dict[str, torch.Tensor], str]:
    """A flat state dict (name -> tensor, on CPU) and where it came from.

    Args:
        weights: the path of a ``torch.save``-d state dict (``{"state_dict": ...}`` wrappers are
            unwrapped), or the state dict itself.
        what: how the error messages name the file ("VGG16 weight file", ...).
        hint: appended to the message of a missing file (what else the caller accepts).

    Returns:
        ``(state_dict, source)``: ``source`` is the path, or ``"<state dict>"``.

    Raises:
        FileNotFoundError: no such file. :class:`WeightsFileError`: a file torch cannot read
        (truncated, not a torch file), or entries that are not tensors.
    """
    if isinstance(weights, Mapping):
        state, source = dict(weights), "<state dict>"
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"{what} '{path}' does not exist. {hint}".rstrip())
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated / corrupt / not a torch file
            raise WeightsFileError(
                f"cannot read {what} '{path}' ({one_line(f'{type(e).__name__}: {e}')}): it is truncated, "
                "corrupt or not a torch file; re-create or re-copy it"
            ) from e
        source = str(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)] if isinstance(state, dict) else ["<all>"]
    if bad:
        shown = ", ".join(bad[:_MAX_LISTED]) + (f", ... ({len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else "")
        raise WeightsFileError(
            f"{source} is not a flat state dict (name -> tensor): entries [{shown}] are not tensors. "
            "Save one with torch.save(model.state_dict(), path)."
        )
    return state, source

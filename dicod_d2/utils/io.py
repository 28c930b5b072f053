"""Atomic file output: a reader never sees a half-written file, a failure leaves nothing behind."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import OutputFolderError


def ensure_writable_dir(folder: Path, option: str | None = None) -> None:
    """Create ``folder`` if needed; raise a clear error when it cannot be created or written.

    ``option``: the setting that chose the folder (``train.output_dir``, ``--out``), named in the
    error.

    Raises:
        OutputFolderError: the folder cannot be created, or is not writable.
    """
    fix = f"Choose a writable location with {option}=DIR." if option else "Choose a writable location."
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputFolderError(f"cannot create output folder '{folder}': {e.strerror}. {fix}") from e
    if not os.access(folder, os.W_OK):
        raise OutputFolderError(f"output folder '{folder}' is not writable. {fix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The parent folder is created if needed; a clear error names an unwritable folder.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files: give the result the permissions of a normal new file
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

"""One run per output folder: a lock file that names the process and host holding the folder.

Two runs writing into one ``train.output_dir`` would mix their config, checkpoints, metrics and
results, and interleave their logs, without any error. A run therefore holds its output folder
with a lock file ``.dicod-d2.lock`` (JSON: pid, host, start time) for its whole duration; a second
run into a held folder stops at once, naming the holder. A lock left by a process that no longer
runs on this host (a killed run) is taken over with a warning; a lock of another host is never
taken over, since this host cannot tell whether that process still runs.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from ..errors import OutputFolderError
from .io import ensure_writable_dir

__all__ = ["LOCK_NAME", "OutputFolderLock"]

LOCK_NAME = ".dicod-d2.lock"
logger = logging.getLogger("dicod_d2")


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie counts as finished)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class OutputFolderLock:
    """Hold ``folder`` (created if needed) while the ``with`` block runs.

    On exit the lock file is removed, and so is the folder when this lock created it and it is
    still empty (a run that stopped on bad input leaves nothing behind).

    Args:
        folder: the output folder.
        option: the setting that chose it, named in the errors (``train.output_dir``).
    Raises (on enter):
        OutputFolderError: the folder is held by a running process (this host) or by a process of
            another host, or it cannot be created or written.
    """

    def __init__(self, folder: str | os.PathLike, option: str = "train.output_dir"):
        self.folder = Path(folder)
        self.option = option
        self.path = self.folder / LOCK_NAME
        self._created_folder = False
        self._held = False

    def __enter__(self) -> OutputFolderLock:
        self._created_folder = not self.folder.exists()
        ensure_writable_dir(self.folder, option=self.option)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale(me["host"])
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            return self
        raise OutputFolderError(f"could not lock output folder '{self.folder}': another run took it "
                                f"at the same time. Give another {self.option}=DIR.")

    def _take_over_if_stale(self, host: str) -> None:
        """Remove the existing lock file if its process is gone (this host); else raise."""
        try:
            holder = json.loads(self.path.read_text())
            pid, holder_host, started = int(holder["pid"]), str(holder["host"]), holder.get("started", "?")
        except FileNotFoundError:  # released meanwhile
            return
        except (OSError, ValueError, KeyError, TypeError):
            pid, holder_host, started = -1, host, "?"  # unreadable: a lock cut short by a kill
        if holder_host != host or (pid != os.getpid() and _running(pid)):
            where = "this host" if holder_host == host else f"host {holder_host}"
            raise OutputFolderError(
                f"output folder '{self.folder}' is in use by another run (process {pid} on {where}, "
                f"since {started}): give another {self.option}=DIR, or wait for that run to end "
                f"(if it is gone, delete {self.path})"
            )
        logger.warning("Taking over output folder %s: its lock names process %d of this host, "
                       "which no longer runs", self.folder, pid)
        self.path.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        if not self._held:
            return
        self.path.unlink(missing_ok=True)
        self._held = False
        if self._created_folder:
            try:
                self.folder.rmdir()  # only when empty
            except OSError:
                pass

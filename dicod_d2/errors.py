"""Error types for bad input from the user.

The command-line tools print a :class:`UserError` (and a missing file or a permission error) as one
``error: ...`` line that names the problem and what to do; any other exception is a bug and keeps
its traceback. Each type also derives from the builtin exception that code catching it expects.
"""
from __future__ import annotations


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of white space collapsed: a third-party library's
    message fit for a one-line error."""
    return " ".join(text.split())


class UserError(Exception):
    """Bad input: a config value, a dataset, a file or an option the user gave."""


class ConfigError(UserError, ValueError):
    """A config file, a ``key=value`` override or a config value that cannot be used."""


class DataError(UserError, ValueError):
    """A dataset that cannot be used: registration, annotations or image files."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used (corrupt, truncated, or of the wrong kind)."""


class OutputFolderError(UserError, OSError):
    """An output folder that cannot be created or written."""


#: what the command-line tools report as one ``error:`` line (``DICOD_DEBUG=1`` shows the
#: traceback); anything else (RuntimeError, KeyError, CUDA out of memory, ...) is a bug and keeps it
USER_ERRORS = (UserError, FileNotFoundError, PermissionError)

"""Numbers as the project's reports print them."""
from __future__ import annotations


def signed(difference: float, digits: int = 1) -> str:
    """``difference`` with its sign at ``digits`` decimals: ``+1.2``, ``-0.3``; a difference that rounds
    to zero reads ``+0.0``, never ``-0.0``."""
    return f"{round(difference, digits) + 0.0:+.{digits}f}"

"""Toasts say a thing once: the same words (title and message) are not shown again
while they are still on screen."""

from __future__ import annotations

import time


class Repeats:
    """The toasts on screen now, by (title, message), with when each one goes."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def fresh(self, title: str, message: str, timeout: float) -> bool:
        """True (and remembered for ``timeout`` seconds) unless the same toast is showing."""
        now = time.monotonic()
        self._until = {k: t for k, t in self._until.items() if t > now}
        key = (title, message)
        if key in self._until:
            return False
        self._until[key] = now + timeout
        return True


TOAST_ROWS = 6
"""A toast's rows with its margin: a title, two lines of message, padding."""


def toast_room(height: int) -> int:
    """How many toasts fit under the header and above the command line and footer (at
    least one): 2 at 80x24, 6 at 160x48."""
    return max(1, (height - 8) // TOAST_ROWS)

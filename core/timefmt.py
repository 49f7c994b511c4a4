"""The one way times are written for people: a clock time ``hh:mm:ss`` and a duration
``4m12s``, in command summaries, the console's toasts, dialogs, tables and log alike.

Simulated clocks start at 0: a clock value is shown as the time of day it would be
(``01:15:02``, with a day count past the first day). A value past ``WALL_EPOCH_FLOOR``
is wall-clock epoch time (real agents) and is shown in local time.

One rounding rule for both: whole seconds elapsed, never rounded up (:func:`whole`), as a
clock and a stopwatch show them. A duration shown beside its clock times is the difference
of the times as shown (:func:`between`): a task started 00:00:00 and finished 00:06:50 took
6m50s on screen, whatever the fractions were.
"""

from __future__ import annotations

import math
import time

WALL_EPOCH_FLOOR = 1e9
"""Clock values past this are wall-clock epoch seconds (real agents), not simulated time."""


def whole(seconds: float) -> int:
    """Whole seconds elapsed (the floor): the one rounding rule of the clock times and
    durations written here."""
    return math.floor(seconds)


def clock(seconds: float) -> str:
    """``hh:mm:ss`` (``Nd hh:mm:ss`` past a day of simulated time)."""
    if seconds >= WALL_EPOCH_FLOOR:
        return time.strftime("%H:%M:%S", time.localtime(whole(seconds)))
    s = max(whole(seconds), 0)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def duration(seconds: float) -> str:
    """``15s``, ``4m12s``, ``2h05m``, ``1d03h``: the two largest units, whole seconds
    elapsed (:func:`whole`)."""
    s = max(whole(seconds), 0)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def between(start: float, end: float) -> str:
    """The duration from ``start`` to ``end`` as their clock times show it: the difference
    of their whole seconds, so the figure and the two times on screen agree."""
    return duration(whole(end) - whole(start))

"""Clocks: a virtual clock for the simulated runtime, a wall clock for real agents.

The virtual clock is a discrete-event scheduler: callbacks run in (time, insertion)
order (later ones kept in a heap, those for the current instant in a FIFO), so the
same inputs give the same run.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

_FLOAT_MAX = sys.float_info.max


def seconds(v: Any) -> float | None:
    """``v`` as a float when it is a finite number of seconds >= 0 (a time or a duration a
    runtime reported, or an event line holds), else None: a bool is not one, nor NaN, inf
    or an int beyond a double's range (whose float() raises)."""
    return float(v) if type(v) in (int, float) and 0.0 <= v <= _FLOAT_MAX else None


class Clock(Protocol):
    virtual: bool
    """True for simulated time, which moves only when the loop moves it (never late)."""

    def now(self) -> float: ...


class WallClock:
    """Seconds since the epoch; real agents live in real time."""

    virtual = False

    def now(self) -> float:
        return time.time()


def _spent() -> None:
    """What a timer holds once it ran or was cancelled."""


class Timer:
    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        # Its callback is let go: an owner that keeps its timer and is referenced by the
        # callback (a simulated task and its finish) is then freed by reference counting,
        # not left for the cyclic collector.
        self.fn = _spent


class VirtualClock:
    """Simulated time starting at ``start``; advances only when asked.

    Callbacks due later wait in a heap ordered by (time, insertion). Those asked for
    at the current instant (a zero delay, a task of no duration) go to a FIFO instead:
    each was inserted after every heap entry of the same time (those were inserted
    before the clock reached it), so running the heap's entries due now first and then
    the FIFO's keeps the (time, insertion) order, without a heap push and pop (and
    their tuple comparisons, equal times falling through to the counter) per callback."""

    virtual = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()
        self._instant: deque[Timer] = deque()
        """Timers due at ``_now``, in the order they were asked for."""

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, fn: Callable[[], None]) -> Timer:
        now = self._now
        if when < now:  # max(when, now) without the builtin's call: the same object kept
            when = now
        t = Timer(when, fn)
        if when == now:
            self._instant.append(t)
        else:
            heapq.heappush(self._heap, (when, next(self._counter), t))
        return t

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.call_at(self._now + max(delay, 0.0), fn)

    def next_time(self) -> float | None:
        instant = self._instant
        while instant and instant[0].cancelled:
            instant.popleft()
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        if self._heap and (not instant or self._heap[0][0] <= self._now):
            return self._heap[0][0]
        return instant[0].when if instant else None

    def run_until(self, until: float, budget: int | None = None, stop: Callable[[], bool] | None = None) -> int:
        """Run every callback due at or before ``until``; returns how many ran.

        With a ``budget`` it stops early (time stays at the last callback run) so
        that a caller can interleave other work, such as flushing the store; with
        ``stop`` it stops as soon as that returns true after a callback (a phase that
        completed wants its checkpoint at that instant).
        """
        ran = 0
        heap, instant = self._heap, self._instant
        while True:
            # The heap's entries due now were inserted before the FIFO's: they run first.
            if heap and heap[0][0] <= until and (not instant or heap[0][0] <= self._now):
                when, _, timer = heapq.heappop(heap)
                if timer.cancelled:
                    continue
                self._now = when
            elif instant and self._now <= until:
                timer = instant.popleft()
                if timer.cancelled:
                    continue
                self._now = timer.when  # the time as it was asked for (an int stays an int)
            else:
                break
            fn, timer.fn = timer.fn, _spent  # let go of the callback (see Timer.cancel)
            fn()
            ran += 1
            if (budget is not None and ran >= budget) or (stop is not None and stop()):
                return ran
        self._now = max(self._now, until)
        return ran

    def pending(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled) + sum(1 for t in self._instant if not t.cancelled)

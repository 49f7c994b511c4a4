"""The virtual clock runs callbacks in (time, insertion) order, whichever queue holds them.

Callbacks asked for at the current instant wait in a FIFO, later ones in a heap: the
order and the times each callback sees are those of one heap ordered by (time,
insertion), which :class:`_Reference` is (the clock before the FIFO).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable

from core.clock import VirtualClock


class _Reference:
    """A clock with one heap ordered by (time, insertion): the order to match."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, list[Callable[[], None]]]] = []
        self._counter = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, fn: Callable[[], None]) -> list[Callable[[], None]]:
        if when < self._now:
            when = self._now
        handle = [fn]
        heapq.heappush(self._heap, (when, next(self._counter), handle))
        return handle

    def cancel(self, handle: list[Callable[[], None]]) -> None:
        handle.clear()

    def next_time(self) -> float | None:
        while self._heap and not self._heap[0][2]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pending(self) -> int:
        return sum(1 for _, _, handle in self._heap if handle)

    def run_until(self, until: float, budget: int | None = None, stop: Callable[[], bool] | None = None) -> int:
        ran = 0
        while self._heap and self._heap[0][0] <= until:
            when, _, handle = heapq.heappop(self._heap)
            if not handle:
                continue
            self._now = when
            fn = handle[0]
            handle.clear()
            fn()
            ran += 1
            if (budget is not None and ran >= budget) or (stop is not None and stop()):
                return ran
        self._now = max(self._now, until)
        return ran


def _script(clock: VirtualClock | _Reference, seed: int) -> list[tuple[int, float, str]]:
    """Callbacks that ask for more (at the current instant, later, in the past, as an
    int or a float), cancel some, under budgets: what ran, when, and the time's type."""
    rng = random.Random(seed)
    seen: list[tuple[int, float, str]] = []
    handles: list[object] = []
    names = itertools.count()

    def cancel(h: object) -> None:
        if isinstance(clock, _Reference):
            assert isinstance(h, list)
            clock.cancel(h)
        else:
            h.cancel()  # type: ignore[attr-defined]

    def make() -> Callable[[], None]:
        me = next(names)

        def fn() -> None:
            now = clock.now()
            seen.append((me, now, type(now).__name__))
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                pick = rng.random()
                if pick < 0.4:
                    when: float = now  # this instant
                elif pick < 0.5:
                    when = now - 1.0  # the past: this instant too
                elif pick < 0.6:
                    when = int(now) + 1  # an int time
                else:
                    when = now + rng.choice((0.5, 1.0, 2.0))
                handles.append(clock.call_at(when, make()))
            if handles and rng.random() < 0.2:
                cancel(handles[rng.randrange(len(handles))])

        return fn

    for _ in range(3):
        handles.append(clock.call_at(0.0, make()))
    handles.append(clock.call_at(1.0, make()))
    until = 0.0
    while len(seen) < 400 and until < 60:
        clock.run_until(until, budget=rng.choice((None, 1, 3, 7)))
        if rng.random() < 0.5:
            until += rng.choice((0.0, 0.5, 1.0))
    return seen


def test_callbacks_run_in_time_then_insertion_order_with_the_times_asked_for() -> None:
    for seed in range(20):
        assert _script(VirtualClock(), seed) == _script(_Reference(), seed)


def test_a_callback_due_later_does_not_run_and_a_cancelled_one_never_runs() -> None:
    clock = VirtualClock()
    ran: list[str] = []
    clock.call_at(0.0, lambda: ran.append("now"))
    clock.call_at(0.0, lambda: ran.append("cancelled")).cancel()
    clock.call_at(2.0, lambda: ran.append("later"))
    assert clock.next_time() == 0.0
    assert clock.pending() == 2
    assert clock.run_until(1.0) == 1
    assert ran == ["now"] and clock.now() == 1.0
    assert clock.next_time() == 2.0
    assert clock.run_until(2.0) == 1
    assert ran == ["now", "later"] and clock.pending() == 0 and clock.next_time() is None


def test_an_entry_of_the_heap_due_now_runs_before_one_asked_for_at_this_instant() -> None:
    clock = VirtualClock()
    ran: list[str] = []
    clock.call_at(1.0, lambda: (ran.append("first"), clock.call_at(1.0, lambda: ran.append("third"))))
    clock.call_at(1.0, lambda: ran.append("second"))
    clock.run_until(1.0, budget=1)  # stops with "second" still in the heap, "third" at this instant
    assert clock.next_time() == 1.0
    clock.run_until(1.0)
    assert ran == ["first", "second", "third"]


def _nested(clock: VirtualClock | _Reference, seed: int) -> list[tuple[object, ...]]:
    """Callbacks that also run the clock themselves (to this instant or a little later,
    under a budget), runs that stop on a predicate, an ``until`` that goes back, an int
    start: what ran, the time and its type, and what ``next_time`` and ``pending`` said."""
    rng = random.Random(seed)
    seen: list[tuple[object, ...]] = []
    handles: list[object] = []
    names = itertools.count()
    depth = [0]

    def note(tag: object) -> None:
        now, nxt = clock.now(), clock.next_time()
        seen.append((tag, now, type(now).__name__, nxt, type(nxt).__name__, clock.pending()))

    def make() -> Callable[[], None]:
        me = next(names)

        def fn() -> None:
            note(me)
            now = clock.now()
            for _ in range(rng.choice((0, 1, 1, 2, 3)) if me < 500 else 0):
                when = rng.choice((now, now - 1, int(now), int(now) + 1, float(now), now + 0.5, now + 2.0))
                handles.append(clock.call_at(when, make()))
            if handles and rng.random() < 0.3:
                h = handles[rng.randrange(len(handles))]
                h.clear() if isinstance(h, list) else h.cancel()  # type: ignore[attr-defined]
            if depth[0] < 2 and rng.random() < 0.1:
                depth[0] += 1
                note(("inner", clock.run_until(now + rng.choice((0, 0.5, 1)), budget=rng.choice((None, 1, 2)))))
                depth[0] -= 1

        return fn

    for _ in range(3):
        handles.append(clock.call_at(rng.choice((0, 0.0)), make()))
    handles.append(clock.call_at(1, make()))
    until: float = 0
    for _ in range(300):
        left = [rng.choice((2, 5, 10**9))]  # callbacks before the run's stop() says stop

        def stop(left: list[int] = left) -> bool:
            left[0] -= 1
            return left[0] <= 0

        note(("outer", clock.run_until(until, budget=rng.choice((None, 1, 3)), stop=stop)))
        until = rng.choice((until, until + 0.5, until + 1, until - 1, int(until)))
        if rng.random() < 0.2:
            handles.append(clock.call_at(clock.now(), make()))
    return seen


def test_runs_from_inside_a_callback_stops_and_an_until_in_the_past_keep_the_one_heap_order() -> None:
    for seed in range(40):
        for start in (0, 0.0, 5):
            assert _nested(VirtualClock(start), seed) == _nested(_Reference(start), seed), (seed, start)

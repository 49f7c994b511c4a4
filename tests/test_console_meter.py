"""Clock formatting: simulated seconds vs wall-clock epoch seconds from real agents."""

from __future__ import annotations

import time

from core.event_types import summarise
from core.events import Event
from core.timefmt import between, duration
from core.timefmt import clock as fmt_clock


def test_simulated_time_is_elapsed_hms() -> None:
    assert fmt_clock(0) == "00:00:00"
    assert fmt_clock(3725) == "01:02:05"
    assert fmt_clock(90000) == "1d 01:00:00"


def test_wall_clock_time_is_local_time_of_day() -> None:
    now = time.time()
    assert fmt_clock(now) == time.strftime("%H:%M:%S", time.localtime(now))
    assert "d " not in fmt_clock(now)


def test_times_and_durations_share_one_rounding_rule() -> None:
    """A task started at 0 that ran 410.6 s: its end row says 00:06:50, so its duration says
    6m50s (rounded it said 6m51s, a second past both clock times)."""
    assert fmt_clock(0.0) == "00:00:00" and fmt_clock(410.6) == "00:06:50"
    assert duration(410.6) == "6m50s"
    assert duration(59.9) == "59s" and duration(3599.9) == "59m59s" and duration(-3.0) == "0s"
    # started at 0.7 (its row 00:00:00), ended at 410.6 (00:06:50): 409.9 s, but the rows say 6m50s
    assert between(0.7, 410.6) == "6m50s" and duration(410.6 - 0.7) == "6m49s"
    assert between(5.0, 5.9) == "0s" and between(5.9, 6.0) == "1s"


def test_a_finished_row_agrees_with_its_clock_time() -> None:
    """The log's row for a task that ended: its clock time and 'in D' read from the same figures."""
    start, end = 0.4, 410.6
    ev = Event(
        3, end, "TASK_COMPLETED", "agent", "execution", {"task": "w/t", "agent": "a1", "duration_s": end - start}
    )
    assert fmt_clock(ev.ts) == "00:06:50"
    assert summarise(ev) == "a1 finished w/t in 6m50s"

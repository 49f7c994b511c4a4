"""Clock formatting: simulated seconds vs wall-clock epoch seconds from real agents."""

from __future__ import annotations

import time

from core.timefmt import clock as fmt_clock


def test_simulated_time_is_elapsed_hms() -> None:
    assert fmt_clock(0) == "00:00:00"
    assert fmt_clock(3725) == "01:02:05"
    assert fmt_clock(90000) == "1d 01:00:00"


def test_wall_clock_time_is_local_time_of_day() -> None:
    now = time.time()
    assert fmt_clock(now) == time.strftime("%H:%M:%S", time.localtime(now))
    assert "d " not in fmt_clock(now)

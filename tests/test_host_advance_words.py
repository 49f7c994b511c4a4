"""What ``/host advance`` says it did: the time advanced is the difference of the clock
times it shows (``core.timefmt.between``), so the figure and the times agree."""

from __future__ import annotations

from core.host.control import Advance


def test_the_advance_says_the_time_between_the_clock_times() -> None:
    # 00:00:00.7 -> 00:00:10.2: the clock shows 00:00:00 then 00:00:10, so 10s (not 9.5s floored to 9s)
    done = Advance(start=0.7, target=10.2, done=True, reached=10.2)
    assert done.outcome() == "advanced 10s to 00:00:10"
    assert Advance(start=59.9, target=120.0, done=True, reached=120.0).outcome() == "advanced 1m01s to 00:02:00"


def test_an_advance_cut_short_does_not_say_it_advanced_to_the_target() -> None:
    cancelled = Advance(start=0.0, target=60.0, cancelled=True, reached=30.4)
    assert cancelled.outcome() == "advance to 00:01:00 cancelled at 00:00:30"
    failed = Advance(start=0.0, target=60.0, error="engine closed", reached=12.0)
    assert failed.outcome() == "advance to 00:01:00 stopped at 00:00:12: engine closed"
    never = Advance(start=5.0, target=60.0, error="engine closed")
    assert never.outcome() == "advance to 00:01:00 stopped at 00:00:05: engine closed", "no reach: at its start"

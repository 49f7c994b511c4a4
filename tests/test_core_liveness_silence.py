"""An agent's silence on the wall clock, less the console's own stalls (late liveness checks)."""

from __future__ import annotations

import pytest

from core.engine.liveness import Liveness


def _liveness(*deaf: tuple[float, float]) -> Liveness:
    lv = Liveness(None)  # type: ignore[arg-type]  # silence() reads only the recorded stalls
    lv.deaf.extend(deaf)
    return lv


def test_a_stall_after_the_agent_was_last_heard_is_not_its_silence() -> None:
    lv = _liveness((105.0, 4.0))  # the check at 105 came 4 s late: the console stalled 101-105
    assert lv.silence(100.0, 106.0) == pytest.approx(2.0)


def test_a_stall_that_ended_as_the_agent_was_heard_excuses_none_of_its_silence() -> None:
    """The report read just before the late check at 100 (heard at 99.99) ended the silence
    the stall 96-100 covered: 15 s later the agent has been silent 15 s, less the stalls
    since (none), not 11 s (the whole stall taken off: a stopped host was found 35 s after
    it stopped under 4 s samples instead of about 15)."""
    lv = _liveness((100.0, 4.0))
    assert lv.silence(99.99, 115.0) == pytest.approx(15.01 - 0.01)
    lv = _liveness((100.0, 4.0), (105.0, 4.0), (110.0, 4.0))
    assert lv.silence(98.0, 110.0) == pytest.approx(12.0 - 2.0 - 4.0 - 4.0)  # 98-100 of the first

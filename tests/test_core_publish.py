"""Committed events reach the subscribers in order, each event those subscribed as its
delivery begins, also when a subscriber subscribes or unsubscribes one meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.clock import VirtualClock
from core.engine import Engine
from core.events import Event


@pytest.mark.parametrize("others", [0, 1, 2])
async def test_a_subscriber_changing_the_subscribers_mid_batch(tmp_path: Path, others: int) -> None:
    """``others`` more subscribers before the two under test (so one, two and more are
    delivered to): at the third event of a batch B unsubscribes A and subscribes C. A
    still gets the third (its delivery began with A), C gets the fourth on."""
    eng = await Engine.open(tmp_path / "p.db", clock=VirtualClock())
    try:
        await eng.flush()
        got: dict[str, list[int]] = {"A": [], "B": [], "C": [], "other": []}
        base = eng.state.seq
        for _ in range(others):
            eng.subscribe(lambda ev: got["other"].append(ev.seq))

        def rec(name: str) -> Callable[[Event], None]:
            return lambda ev: got[name].append(ev.seq)

        unsubscribe_a = eng.subscribe(rec("A"))

        def b(ev: Event) -> None:
            got["B"].append(ev.seq)
            if ev.seq == base + 3:
                unsubscribe_a()
                eng.subscribe(rec("C"))

        eng.subscribe(b)
        for i in range(6):
            eng.set_setting(f"probe{i}", i)
        assert got["B"] == [], "nothing heard before the commit"
        await eng.flush()
        seqs = list(range(base + 1, eng.state.seq + 1))
        assert len(seqs) >= 6
        assert got["B"] == seqs
        assert got["A"] == seqs[:3]
        assert got["C"] == seqs[3:]
        assert got["other"] == [s for s in seqs for _ in range(others)]
    finally:
        await eng.close()

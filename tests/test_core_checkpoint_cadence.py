"""Checkpoints on the documented cadence: one at each completed phase, one when the
interval (15 simulated minutes, or what integrity monitoring sets) has passed since
the last automatic one, one when the event limit is reached; a long advance keeps it.
``enable-enhanced-integrity-monitoring`` aggressive/paranoid measurably change it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from core.commands import run_command
from core.config import Config
from core.session import memory_sim

MINUTES_40 = 2400.0


async def _run(freq: str | None, config: Config | None = None) -> tuple[Any, list[Any], list[float]]:
    eng = memory_sim(config=config, seed=0)
    if freq:
        r = await run_command(
            eng, f"""/coordination-hub enable-enhanced-integrity-monitoring '{{"checkpoint_frequency": "{freq}"}}'"""
        )
        assert r["status"] == "success", r
    phases: list[float] = []
    eng.observe(lambda ev: phases.append(ev.ts) if ev.type == "PHASE_COMPLETED" else None)
    await eng.advance(MINUTES_40)  # one call: the cadence must hold inside it
    cps = sorted((c for c in eng.state.checkpoints.values() if c.kind != "manual"), key=lambda c: c.seq)
    return eng, cps, phases


def expected(phases: list[float], interval: float, end: float) -> list[tuple[str, float]]:
    """The checkpoints the documented cadence gives: each phase completion, and the
    interval after the last automatic checkpoint when no phase came first."""
    out: list[tuple[str, float]] = []
    last = 0.0
    for p in sorted(set(phases)) + [float("inf")]:
        while last + interval <= min(p, end) + 1e-6:
            last += interval
            out.append(("incremental", round(last, 3)))
        if p > end:
            break
        out.append(("phase_complete", round(p, 3)))
        last = p
    return out


@pytest.mark.parametrize(("freq", "interval"), [(None, 900.0), ("aggressive", 300.0), ("paranoid", 60.0)])
async def test_forty_minutes_of_the_demo_take_the_checkpoints_the_cadence_says(
    freq: str | None, interval: float
) -> None:
    eng, cps, phases = await _run(freq)
    assert eng.checkpoint_interval() == interval
    got = [(c.kind, round(c.ts, 3)) for c in cps]
    assert got == expected(phases, interval, MINUTES_40)


async def test_aggressive_and_paranoid_monitoring_take_more_checkpoints_than_without() -> None:
    counts = {f: len((await _run(f))[1]) for f in (None, "aggressive", "paranoid")}
    assert counts[None] < counts["aggressive"] < counts["paranoid"], counts
    incremental = {f: sum(1 for c in (await _run(f))[1] if c.kind == "incremental") for f in (None, "aggressive")}
    assert incremental["aggressive"] > incremental[None], incremental


async def test_the_event_limit_takes_a_checkpoint_when_it_is_reached() -> None:
    cfg = Config.model_validate({"intervals": {"checkpoint_events": 200, "checkpoint_s": 10**6}})
    eng, cps, _ = await _run(None, cfg)
    seqs = [0] + [c.seq for c in cps]
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    assert len(cps) >= 3 and max(gaps) <= 200 + 25, gaps  # one simulated fact emits a handful of events
    assert eng.state.seq - seqs[-1] < 200 + 25

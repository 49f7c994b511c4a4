"""Network partition: buffered reports merge by commuting rules, applied exactly once."""

from __future__ import annotations

import itertools
import random

from core.merge import BufferedReport, merge
from core.models import AgentStatus
from core.session import memory_sim


def reports() -> list[tuple[str, BufferedReport]]:
    return [
        ("a1", BufferedReport(1, "started", "w/t1")),
        ("a1", BufferedReport(2, "progress", "w/t1", progress=0.4)),
        ("a1", BufferedReport(3, "progress", "w/t1", progress=0.9)),
        ("a1", BufferedReport(4, "finished", "w/t1")),
        ("a2", BufferedReport(1, "progress", "w/t2", progress=0.3)),
    ]


def test_merge_rules_commute_and_are_idempotent() -> None:
    base = merge(reports())
    assert base["w/t1"].status == "completed" and base["w/t1"].progress == 1.0
    for perm in itertools.permutations(reports()):
        assert merge(perm) == base
    doubled = reports() + reports()[1:3]
    random.Random(3).shuffle(doubled)
    assert merge(doubled) == base


async def _partition_run(shuffle: bool) -> tuple[str, int]:
    eng = memory_sim(seed=4)
    await eng.advance(600)
    rt = eng.runtime
    cut = sorted(a.id for a in eng.state.agents.values() if a.status is AgentStatus.BUSY)[:3]
    rt.partition(cut)  # type: ignore[union-attr]
    await eng.advance(600)
    assert all(eng.state.agents[a].status is AgentStatus.UNREACHABLE for a in cut)
    if shuffle:
        rng = random.Random(11)
        for a in cut:
            sa = rt.agents[a]  # type: ignore[union-attr]
            dup = sa.buffer + sa.buffer[: len(sa.buffer) // 2]  # redelivered duplicates
            rng.shuffle(dup)
            sa.buffer = dup
    applied: list[tuple[str, int]] = []
    eng.subscribe(
        lambda ev: applied.append((ev.data["agent"], ev.data["seq"])) if ev.type == "AGENT_SEQ_APPLIED" else None
    )
    rt.heal(cut)  # type: ignore[union-attr]
    assert len(applied) == len(set(applied)), "a buffered report was applied twice"
    await eng.advance(300)
    return eng.state.state_hash(), len(applied)


async def test_reconnection_applies_each_report_once_in_any_order() -> None:
    in_order, n1 = await _partition_run(shuffle=False)
    shuffled, n2 = await _partition_run(shuffle=True)
    assert n1 == n2 > 0
    assert in_order == shuffled

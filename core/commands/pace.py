"""How fast each agent and the fleet work against plan, and which agents are the bottleneck.

Shared by the degradation playbook (which agents to take out of dispatch), its criterion
(the fleet's pace since the plan against the efficiency before the fault) and the
optimisation monitor's adaptive tuning (``real-time-optimization-monitoring``), which
keeps taking agents that fall behind out of dispatch while its window is open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import AgentStatus, TaskStatus

if TYPE_CHECKING:
    from ..engine import Engine


def agent_pace(engine: Engine, since: float, recent: int = 2) -> dict[str, float]:
    """Per agent: how fast it works against plan lately: the mean of its ``recent``
    latest observations since ``since``, each a task it completed without
    interruption (planned / actual duration) or its current task (progress made
    against time elapsed). 1.0 = as modelled. Recent observations count because a
    degradation is about now, not about the agent's whole history."""
    s = engine.state
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    acc: dict[str, list[tuple[float, float]]] = {}
    for t in s.tasks.values():
        if (
            t.status is TaskStatus.COMPLETED
            and t.attempts == 1
            and t.agent
            and t.started_at is not None
            and t.finished_at is not None
            and t.finished_at >= since
        ):
            took = t.finished_at - t.started_at
            if took > 0 and t.duration_s > 0:
                acc.setdefault(t.agent, []).append((t.finished_at, min(t.duration_s / took, 1.5)))
    for a in s.agents.values():
        if a.status is AgentStatus.BUSY and a.current_task:
            t = s.tasks[a.current_task]
            # Progress is as of the agent's last report, so the pace is measured to then.
            heard = a.last_heartbeat if a.last_heartbeat is not None else now
            if (
                t.started_at is not None
                and t.started_at >= since
                and heard - t.started_at > 2 * hb
                and t.duration_s > 0
                and t.attempts == 1
            ):
                planned = (heard - t.started_at) / t.duration_s
                acc.setdefault(a.id, []).append((now, min(t.context.progress / planned, 1.5) if planned > 0 else 1.0))
    out: dict[str, float] = {}
    for agent_id, obs in sorted(acc.items()):
        last = [v for _, v in sorted(obs)[-recent:]]
        out[agent_id] = round(sum(last) / len(last), 4)
    return out


def bottleneck(engine: Engine, since: float) -> dict[str, Any]:
    """Slow agents (pace below the median by more than the configured degradation
    trigger) and what replacing them is worth: the fleet's mean pace with the slow
    agents at the median of the others."""
    pace = agent_pace(engine, since)
    if not pace:
        return {"pace": {}, "slow": [], "expected_pct": 0.0}
    vals = sorted(pace.values())
    med = vals[len(vals) // 2]
    cut = 1.0 - engine.config.performance.degradation_trigger_pct / 100.0
    slow = sorted((a for a, v in pace.items() if v < cut * med), key=lambda a: pace[a])
    others = [v for a, v in pace.items() if a not in slow] or [med]
    healthy = sorted(others)[len(others) // 2]
    now_mean = sum(pace.values()) / len(pace)
    after_mean = sum(healthy if a in slow else v for a, v in pace.items()) / len(pace)
    expected = 100.0 * (after_mean / now_mean - 1.0) if now_mean > 0 else 0.0
    return {"pace": pace, "slow": slow, "median_pace": med, "expected_pct": round(expected, 1)}


async def fresh_efficiency(engine: Engine, since: float, until: float | None = None) -> list[float]:
    """Planned / actual duration of tasks that ran start to end on one agent (never
    interrupted, so the figure is not flattered by carried-over progress)."""
    out = []
    for t in await engine.tasks_with_archive(finished_since=since):
        if (
            t.status is TaskStatus.COMPLETED
            and t.attempts == 1
            and t.started_at is not None
            and t.finished_at is not None
            and t.started_at >= since
            and (until is None or t.finished_at <= until)
        ):
            took = t.finished_at - t.started_at
            if took > 0 and t.duration_s > 0:
                out.append(min(t.duration_s / took, 1.5))
    return out


async def pace_now(engine: Engine, since: float) -> list[float]:
    """Planned / actual pace of every task started since ``since`` that ran on one
    agent: finished ones by their duration, running ones by their progress so far
    (so slow agents count before they finish, and early finishers do not flatter it)."""
    out = await fresh_efficiency(engine, since)
    now = engine.clock.now()
    hb = engine.config.intervals.heartbeat_s
    for a in engine.state.agents.values():
        if a.status is AgentStatus.BUSY and a.current_task:
            t = engine.state.tasks[a.current_task]
            heard = a.last_heartbeat if a.last_heartbeat is not None else now  # progress is as of the last report
            if (
                t.attempts == 1
                and t.started_at is not None
                and t.started_at >= since
                and heard - t.started_at > 2 * hb
                and t.duration_s > 0
            ):
                planned = (heard - t.started_at) / t.duration_s
                out.append(min(t.context.progress / planned, 1.5))
    return out

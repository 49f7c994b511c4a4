"""Analyses of the state's consistency: invariants, checkpoints against their hashes, the log replayed."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ...engine import Engine, EngineError
from ...event_types import (
    EVENTS,
)
from ...models import AgentStatus, TaskStatus, WorkflowStatus
from ...projection import State
from .findings import AnalysisSet, Finding

DECLARED = AnalysisSet()
analysis = DECLARED.analysis
windowed = DECLARED.windowed


@analysis("state_consistency", "invariants between agents, tasks and workflows in the projection")
async def state_consistency(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    problems: list[dict[str, Any]] = []
    s = engine.state
    for a in s.agents.values():
        if a.current_task:
            t = s.tasks.get(a.current_task)
            if t is None or t.agent != a.id or t.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                problems.append({"agent": a.id, "problem": f"holds {a.current_task} which is not running on it"})
    for t in s.tasks.values():
        if only is not None and t.workflow not in only:
            continue
        if t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            holder = s.agents.get(t.agent or "")
            if holder is None or holder.current_task != t.id:
                problems.append({"task": t.id, "problem": f"{t.status.value} but agent {t.agent} does not hold it"})
            elif holder.status in (AgentStatus.FAILED, AgentStatus.RETIRED):
                problems.append(
                    {"task": t.id, "problem": f"{t.status.value} on {holder.status.value} agent {holder.id}"}
                )
        if t.workflow not in s.workflows:
            problems.append({"task": t.id, "problem": "belongs to no workflow"})
        if not 0.0 <= t.context.progress <= 1.0:
            problems.append({"task": t.id, "problem": f"progress {t.context.progress} out of range"})
    for w in s.workflows.values():
        if only is not None and w.id not in only:
            continue
        left = sum(1 for k in w.tasks if s.tasks[k].status is not TaskStatus.COMPLETED)
        if w.status is WorkflowStatus.COMPLETED and left:
            problems.append({"workflow": w.id, "problem": f"completed with {left} task(s) not completed"})
        if s.wf_left.get(w.id, left) != left:
            problems.append({"workflow": w.id, "problem": f"counter says {s.wf_left.get(w.id)} left, tasks say {left}"})
    frozen = sorted(w.id for w in s.workflows.values() if w.frozen)
    return [
        Finding(
            "state_consistency",
            "critical" if problems else "info",
            "projection",
            f"{len(problems)} inconsistency(ies) in {len(s.agents)} agents, {len(s.tasks)} tasks, {len(s.workflows)} live workflows",
            {"problems": problems[:20], "state_hash": s.state_hash(), "seq": s.seq, "frozen_workflows": frozen},
        )
    ]


@analysis("checkpoint_integrity", "every checkpoint's stored snapshot against its recorded hash")
async def checkpoint_integrity(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    ok: list[int] = []
    bad: dict[int, str] = {}
    for cp_id in sorted(engine.state.checkpoints):
        try:
            await engine.verified_checkpoint(cp_id)
            ok.append(cp_id)
        except EngineError as exc:
            bad[cp_id] = exc.message
    latest = max(ok) if ok else None
    cp = engine.state.checkpoints.get(latest) if latest else None
    sev = "critical" if bad and not ok else "high" if bad else "medium" if not ok else "info"
    return [
        Finding(
            "checkpoint_integrity",
            sev,
            "checkpoints",
            f"{len(ok)} checkpoint(s) verify, {len(bad)} fail"
            + (f"; latest verified #{latest} at seq {cp.seq}" if cp else "; no restore point"),
            {
                "verified": ok,
                "failed": {str(k): v for k, v in bad.items()},
                "latest_verified": latest,
                "events_since_latest": engine.state.seq - cp.seq if cp else None,
            },
        )
    ]


async def replay_state(engine: Engine, exclude: Collection[int] = ()) -> tuple[State | None, int, int | None]:
    """The state the stored log gives: latest verified checkpoint + replay after it.
    ``exclude``: checkpoints not to start from (a verify by replay found them differing
    from the log: their hash matches a drifted projection). Returns (state, events
    replayed, checkpoint used); no store -> (None, 0, None)."""
    if engine.store is None:
        return None, 0, None
    await engine.flush()
    state = State(EVENTS.folds)
    since = 0
    used = None
    for cp_id in sorted(engine.state.checkpoints, reverse=True):
        if cp_id in exclude:
            continue
        try:
            snap = await engine.verified_checkpoint(cp_id)
        except EngineError:
            continue
        state = State.from_snapshot(EVENTS.folds, snap)
        since = snap["seq"]
        used = cp_id
        break
    n = 0
    async for ev in engine.store.iter_events(since):
        state.apply(ev)
        n += 1
    return state, n, used


def diff_segments(a: State, b: State, only: set[str] | None = None) -> list[str]:
    """Which workflows, tasks and agents differ between two states."""
    out: list[str] = []
    for wid in sorted(set(a.finished) | set(b.finished)):
        if (only is None or wid in only) and wid not in a.workflows and wid not in b.workflows:
            fa, fb = a.finished.get(wid), b.finished.get(wid)
            if (fa.model_dump() if fa else None) != (fb.model_dump() if fb else None):
                out.append(f"workflow:{wid}")
    for wid in sorted(set(a.workflows) | set(b.workflows)):
        if only is not None and wid not in only:
            continue
        wa, wb = a.workflows.get(wid), b.workflows.get(wid)
        if (wa.model_dump() if wa else None) != (wb.model_dump() if wb else None):
            out.append(f"workflow:{wid}")
        keys = set(wa.tasks if wa else []) | set(wb.tasks if wb else [])
        for k in sorted(keys):
            ta, tb = a.tasks.get(k), b.tasks.get(k)
            if (ta.model_dump() if ta else None) != (tb.model_dump() if tb else None):
                out.append(f"task:{k}")
    if only is None:
        for aid in sorted(set(a.agents) | set(b.agents)):
            x, y = a.agents.get(aid), b.agents.get(aid)
            if (x.model_dump() if x else None) != (y.model_dump() if y else None):
                out.append(f"agent:{aid}")
    return out


@analysis("log_replay", "the in-memory state against the state rebuilt from the stored log")
async def log_replay(engine: Engine, only: set[str] | None = None) -> list[Finding]:
    rebuilt, n, cp = await replay_state(engine)
    if rebuilt is None:
        return [Finding("log_replay", "low", "log", "no stored log to replay (in-memory engine)", {"store": None})]
    segs = diff_segments(engine.state, rebuilt, only)
    same = rebuilt.state_hash() == engine.state.state_hash()
    return [
        Finding(
            "log_replay",
            "critical" if segs else "info",
            "log",
            f"replay of {n} event(s) after checkpoint {cp} "
            + ("matches the live state" if same and not segs else f"differs in {len(segs)} segment(s)"),
            {
                "replayed_events": n,
                "from_checkpoint": cp,
                "live_hash": engine.state.state_hash(),
                "replayed_hash": rebuilt.state_hash(),
                "differing_segments": segs[:30],
            },
        )
    ]

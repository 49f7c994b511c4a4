"""Staged resumption: a plan of concrete steps applied one at a time, each only after
utilisation has stayed under the safe threshold for the hold period.

The plan is stored in the state (``RESUMPTION_CREATED``); each applied step is an
event, so a restarted console continues where it stopped. The driver runs on the
engine's sample hook; :func:`attach` installs it once per engine.
"""

from __future__ import annotations

import math
from typing import Any

from ..engine import Engine, EngineError
from ..event_types import RESUMPTION_ABORTED, RESUMPTION_COMPLETED, RESUMPTION_HELD, RESUMPTION_STEP_APPLIED
from ..models import Resources, Resumption, ResumptionStage, StagedStep, WorkflowStatus
from .payloads import GradualResumption

LIMIT_SHARE = {"conservative": 0.5, "moderate": 0.75, "full": None}
HOLD_FACTOR = {"basic": 0.5, "standard": 1.0, "comprehensive": 2.0}


def scaled(base: Resources, share: float) -> Resources:
    return Resources(
        cpu_cores=round(base.cpu_cores * share, 2),
        memory_gb=round(base.memory_gb * share, 2),
        agents=max(1, math.ceil(base.agents * share)),
    )


def plan_steps(engine: Engine, p: GradualResumption) -> tuple[list[StagedStep], list[ResumptionStage]]:
    """Concrete steps for the stages: what each limit word means in numbers."""
    s = engine.state
    steps: list[StagedStep] = []
    stages: list[ResumptionStage] = []
    limited: list[str] = []
    for st in p.stages:
        first = len(steps)
        if st.action == "release_pool":
            assert st.pool is not None
            steps.append(pool_step(engine, st.stage, st.pool, st.agents, p.hold))
            stages.append(ResumptionStage(stage=st.stage, action=st.action, pool=st.pool, steps=[first]))
            continue
        assert st.workflow is not None
        wf = s.workflows[st.workflow]
        base = wf.base_allocation
        if st.action in ("resume_paused_workflow", "resume_workflow"):
            share = LIMIT_SHARE.get(st.resource_limit or "full")
            limit = scaled(base, share) if share is not None else None
            what = f"resume {wf.id}" + (f" limited to {_fmt(limit)} ({st.resource_limit})" if limit else "")
            steps.append(StagedStep(stage=st.stage, workflow=wf.id, resume=True, limit=limit, what=what))
            if limit is not None:
                limited.append(wf.id)
                if st.gradual_scaling and share is not None and share < 0.75:
                    mid = scaled(base, 0.75)
                    what = f"raise {wf.id} limit to {_fmt(mid)}"
                    steps.append(StagedStep(stage=st.stage, workflow=wf.id, limit=mid, what=what))
        elif st.action == "restore_full_allocation":
            cur = wf.allocation
            parts = 3 if st.gradual_scaling else 1
            for i in range(1, parts + 1):
                f = i / parts
                alloc = Resources(
                    cpu_cores=round(cur.cpu_cores + (base.cpu_cores - cur.cpu_cores) * f, 2),
                    memory_gb=round(cur.memory_gb + (base.memory_gb - cur.memory_gb) * f, 2),
                    agents=round(cur.agents + (base.agents - cur.agents) * f),
                )
                steps.append(
                    StagedStep(
                        stage=st.stage,
                        workflow=wf.id,
                        allocation=alloc,
                        resume=wf.status is WorkflowStatus.PAUSED and i == 1,
                        what=f"set {wf.id} allocation to {_fmt(alloc)} ({i}/{parts} of the way to its base)",
                    )
                )
        elif st.action == "lift_limits":
            steps.append(
                StagedStep(stage=st.stage, workflow=wf.id, limit=None, lift=True, what=f"lift the limit of {wf.id}")
            )
        stages.append(
            ResumptionStage(
                stage=st.stage,
                action=st.action,
                workflow=wf.id,
                resource_limit=st.resource_limit,
                gradual_scaling=st.gradual_scaling,
                steps=list(range(first, len(steps))),
            )
        )
    for wid in dict.fromkeys(limited):
        steps.append(
            StagedStep(
                stage=stages[-1].stage, workflow=wid, limit=None, lift=True, what=f"lift the resumption limit of {wid}"
            )
        )
    return steps, stages


def pool_step(engine: Engine, stage: int, pool: str, agents: int | None, hold: float | None) -> StagedStep:
    """A step of a pool held after a rate limit: let ``agents`` of it work (from its reset
    time, which the hold itself enforces), or lift the hold, not before the reset time
    and a hold period after it."""
    h = engine.state.usage.holds.get(pool)
    reset = h.reset_at if h is not None else engine.clock.now()
    if agents is None:
        what = f"lift the rate-limit hold of pool {pool}"
        return StagedStep(
            stage=stage, pool=pool, pool_agents=agents, not_before=round(reset + (hold or 0.0), 3), what=what
        )
    return StagedStep(
        stage=stage, pool=pool, pool_agents=agents, what=f"let {agents} agent(s) of pool {pool} work from its reset"
    )


def _fmt(r: Resources | None) -> str:
    if r is None:
        return "no limit"
    return f"{r.cpu_cores:g} cores / {r.memory_gb:g} GB / {r.agents} agents"


def apply_step(engine: Engine, rid: str, index: int, actor: str) -> dict[str, Any]:
    """Apply one step now and record it."""
    r = engine.state.resumptions[rid]
    step = r.steps[index]
    if step.pool is not None:
        return _apply_pool_step(engine, rid, index, step, actor)
    wid = step.workflow
    assert wid is not None, "a step names its workflow or its pool"
    wf = engine.state.workflows[wid]
    done: list[str] = []
    if step.sets_limit:
        engine.set_stage_limit(wid, step.limit.model_copy() if step.limit else None, actor=actor)
        done.append("limit")
    if step.allocation:
        engine.set_allocation(wid, step.allocation.model_copy(), actor=actor)
        done.append("allocation")
    if step.resume and wf.status is WorkflowStatus.PAUSED:
        engine.resume_workflow(wid, actor=actor)
        done.append("resumed")
    util = engine.utilisation()
    engine.emit(
        RESUMPTION_STEP_APPLIED,
        "coordination",
        "resumption",
        {"id": rid, "step": index, "stage": step.stage, "workflow": wid, "what": step.what, "utilisation": util},
        actor=actor,
    )
    return {"step": index, "what": step.what, "applied": done}


def _apply_pool_step(engine: Engine, rid: str, index: int, step: StagedStep, actor: str) -> dict[str, Any]:
    pool = step.pool
    assert pool is not None
    done = []
    if pool in engine.state.usage.holds:
        engine.spend.release_pool(pool, step.pool_agents, actor=actor)
        done.append("released" if step.pool_agents is None else "agents")
    engine.emit(
        RESUMPTION_STEP_APPLIED,
        "coordination",
        "resumption",
        {"id": rid, "step": index, "stage": step.stage, "pool": pool, "what": step.what, "applied": done},
        actor=actor,
    )
    return {"step": index, "what": step.what, "applied": done}


def stable(engine: Engine, now: float, safe: float, hold: float) -> tuple[bool, dict[str, Any]]:
    """Utilisation (CPU and memory samples) under ``safe`` for the last ``hold`` seconds."""
    tel = engine.telemetry
    cpu = tel.get("cpu_pct").since(now - hold)
    mem = tel.get("memory_pct").since(now - hold)
    peak_cpu = max((v for _, v in cpu), default=None)
    peak_mem = max((v for _, v in mem), default=None)
    covered = bool(cpu) and cpu[0][0] <= now - hold + engine.config.intervals.sample_s
    ok = covered and peak_cpu is not None and peak_cpu < safe and (peak_mem is None or peak_mem < safe)
    return ok, {
        "peak_cpu_pct": peak_cpu,
        "peak_memory_pct": peak_mem,
        "samples": len(cpu),
        "safe_pct": safe,
        "hold_s": hold,
    }


def tick(engine: Engine, now: float) -> None:
    """Advance every active resumption whose last step has held stable long enough."""
    if engine.readonly:
        return
    for rid in sorted(engine.state.resumptions):
        r = engine.state.resumptions[rid]
        if r.status != "active" or r.held:
            continue
        last = r.applied[-1].at if r.applied else r.created_at
        if now - last < r.hold_s:
            continue
        nxt = r.steps[r.next_step] if r.next_step < len(r.steps) else None
        if nxt is not None and now < (nxt.not_before or 0.0):
            continue
        # A pool's step waits on its reset time, not on the machine's load (a rate limit
        # is the provider's, not this machine's).
        ok = True if nxt is not None and nxt.pool is not None else stable(engine, now, r.safe_pct, r.hold_s)[0]
        if not ok:
            continue
        try:
            if r.next_step < len(r.steps):
                apply_step(engine, rid, r.next_step, actor="resumption")
            if engine.state.resumptions[rid].next_step >= len(r.steps):
                engine.emit(
                    RESUMPTION_COMPLETED,
                    "coordination",
                    "resumption",
                    {"id": rid, "steps": len(r.steps), "took_s": round(now - r.created_at, 3)},
                    actor="resumption",
                )
        except EngineError as exc:
            engine.emit(
                RESUMPTION_ABORTED,
                "coordination",
                "resumption",
                {"id": rid, "reason": f"{exc.code}: {exc.message}"},
                actor="resumption",
            )


def attach(engine: Engine) -> None:
    """Install the command language's sample hooks on an engine (once): staged
    resumptions advance, monitors raise threshold alerts and close their windows."""
    from .monitoring import Watch

    watch = Watch(engine)

    def hook(now: float) -> None:
        tick(engine, now)
        watch(now)

    engine.on_sample(hook, name="commands")


def _active(engine: Engine, rid: str) -> Resumption:
    r = engine.state.resumptions.get(rid)
    if r is None:
        raise EngineError(
            "RESUMPTION_NOT_FOUND", f"no staged resumption {rid!r}", {"known": sorted(engine.state.resumptions)}
        )
    if r.status != "active":
        raise EngineError("INVALID_STATE", f"resumption {rid} is {r.status}, not active", {"resumption": rid})
    return r


def advance_resumption(engine: Engine, rid: str, actor: str = "operator") -> dict[str, Any]:
    """The operator's override: apply the next step now, without waiting for the checks."""
    r = _active(engine, rid)
    out = apply_step(engine, rid, r.next_step, actor)
    after = engine.state.resumptions[rid]
    if after.next_step >= len(after.steps):
        engine.emit(
            RESUMPTION_COMPLETED,
            "coordination",
            "resumption",
            {"id": rid, "steps": len(after.steps), "took_s": round(engine.clock.now() - after.created_at, 3)},
            actor=actor,
        )
    return {
        "resumption": rid,
        **out,
        "status": engine.state.resumptions[rid].status,
        "next_step": after.next_step,
    }


def hold_resumption(engine: Engine, rid: str, actor: str = "operator", held: bool | None = None) -> dict[str, Any]:
    """Hold a resumption at its current step (no automatic advance) or release it;
    without ``held`` it toggles."""
    r = _active(engine, rid)
    new = (not r.held) if held is None else held
    engine.emit(RESUMPTION_HELD, "coordination", "resumption", {"id": rid, "held": new}, actor=actor)
    return {"resumption": rid, "held": new, "next_step": r.next_step}

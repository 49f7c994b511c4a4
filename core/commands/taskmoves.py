"""Moving tasks between agents: direct assignment, and finding what failed agents held."""

from __future__ import annotations

from ..engine import Engine
from ..event_types import (
    AGENT_ERROR,
    PHASE_STARTED,
    TASK_ASSIGNED,
    TASK_CONTEXT_TRANSFERRED,
    TASK_REASSIGNED,
)
from ..models import AgentStatus, TaskStatus, WorkflowStatus


def can_assign(engine: Engine, key: str, agent_id: str) -> str | None:
    """Why ``key`` cannot go to ``agent_id`` now (None if it can)."""
    s = engine.state
    t = s.tasks.get(key)
    a = s.agents.get(agent_id)
    if t is None or a is None:
        return "unknown task or agent"
    if a.status is not AgentStatus.IDLE:
        return f"{agent_id} is {a.status.value}"
    if t.specialization not in a.specializations:
        return f"{agent_id} lacks the specialization {t.specialization}"
    if t.status is not TaskStatus.PENDING:
        return f"{key} is {t.status.value}"
    if s.pending_deps.get(key, 0) != 0:
        return f"{key} waits on dependencies"
    wf = s.workflows[t.workflow]
    if wf.status is not WorkflowStatus.RUNNING or wf.frozen:
        return f"{wf.id} is {'frozen' if wf.frozen else wf.status.value}"
    return None


def assign_task(engine: Engine, key: str, agent_id: str, actor: str) -> None:
    """Give a ready task to a chosen idle agent now (the operator's choice, not the scheduler's)."""
    t = engine.state.tasks[key]
    if (t.workflow, t.phase) not in engine.state.phase_started:
        engine.emit(
            PHASE_STARTED, "coordination", "workflow", {"workflow_id": t.workflow, "phase": t.phase}, actor=actor
        )
    engine.emit(
        TASK_ASSIGNED,
        "coordination",
        "scheduler",
        {"task": key, "agent": agent_id, "workflow_id": t.workflow, "chosen_by": actor},
        actor=actor,
    )
    if engine.runtime is not None:
        engine.runtime.start_task(agent_id, engine.state.tasks[key])


async def failed_agent_tasks(engine: Engine, agents: list[str]) -> dict[str, dict[str, float | None]]:
    """Tasks each agent held when it failed (or went unreachable), from the log, with
    the progress recorded when the task was taken off it."""
    out: dict[str, dict[str, float | None]] = {a: {} for a in agents}
    s = engine.state
    for a in agents:
        ag = s.agents.get(a)
        if ag is not None and ag.current_task:
            out[a][ag.current_task] = s.tasks[ag.current_task].context.progress
    if engine.store is not None:
        await engine.flush()
        for ev in await engine.store.read_events(0, types=[AGENT_ERROR, TASK_REASSIGNED]):
            who = ev.data.get("agent") if ev.type == AGENT_ERROR else ev.data.get("from")
            task = ev.data.get("task")
            if who not in out or not task:
                continue
            if ev.type == AGENT_ERROR:
                out[who].setdefault(task, None)
            elif ev.data.get("reason") in ("agent_failed", "agent_unreachable", "agent_retired"):
                out[who][task] = ev.data.get("progress")
    return out


async def transfer_contexts(engine: Engine, pairs: list[tuple[str, str | None]], actor: str) -> list[dict]:
    """Move the task context of each failed agent's tasks to its replacement.

    A task another agent already resumed keeps going there (its context went with
    it); a queued task gets the context recorded for the replacement and, if the
    replacement is idle and matches, is assigned to it at once."""
    s = engine.state
    held = await failed_agent_tasks(engine, [f for f, _ in pairs])
    out: list[dict] = []
    for failed, repl in pairs:
        for key, at_loss in held.get(failed, {}).items():
            t = s.tasks.get(key)
            if t is None:
                continue
            entry = {
                "task": key,
                "from": failed,
                "to": repl,
                "progress": t.context.progress,
                "progress_at_loss": at_loss,
                "context_preserved": at_loss is None or t.context.progress + 1e-9 >= at_loss,
                "partial_results": sorted(t.context.partial_results),
                "output_lines": len(t.context.last_output),
                "moved": False,
            }
            if t.status is TaskStatus.COMPLETED:
                entry["state"] = "already completed"
            elif t.status in (TaskStatus.RUNNING, TaskStatus.PAUSED) and t.agent not in (failed, None):
                entry["state"] = f"already resumed by {t.agent} with its context"
                entry["to"] = t.agent
            elif t.status is TaskStatus.FAILED:
                entry["state"] = "failed: needs a restore, not a transfer"
            else:
                engine.emit(
                    TASK_CONTEXT_TRANSFERRED,
                    "coordination",
                    "recovery",
                    {"task": key, "from": failed, "to": repl, "context": t.context.model_dump(mode="json")},
                    actor=actor,
                )
                entry["moved"] = True
                why = can_assign(engine, key, repl) if repl else "no replacement named"
                if why is None and repl is not None:
                    assign_task(engine, key, repl, actor)
                    entry["state"] = f"assigned to {repl}"
                else:
                    entry["state"] = f"queued with its context ({why})"
            out.append(entry)
    return out

"""A projection's snapshot: what is hashed and stored at a checkpoint, and loading one back.

Live work (pools, agents, workflows and their tasks, incidents, plans, settings,
counters) is held whole; finished workflows and checkpoint records are history, held
as a count and digest each (``core.projection_history``) with their entries kept beside
the checkpoints. The whole form (both parts in the snapshot) is what stores wrote
before; it is still read, and produced for ``verify`` to check such snapshots.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from math import copysign
from typing import Any, Protocol

from .incident_models import Incident, Plan
from .models import DONE_CONTEXT, EMPTY_CONTEXT, Agent, Checkpoint, FinishedWorkflow, Pool, Resumption, Task, Workflow
from .projection_history import DIGEST_KEYS, HistoryCache, HistoryRows, is_compact
from .usage.models import UsageLedger


class State(Protocol):
    """The records of :class:`core.projection.State` a snapshot holds (typed here so that
    the projection imports this module and not the other way round)."""

    seq: int
    clock: float
    pools: dict[str, Pool]
    agents: dict[str, Agent]
    workflows: dict[str, Workflow]
    tasks: dict[str, Task]
    finished: MutableMapping[str, FinishedWorkflow]
    checkpoints: dict[int, Checkpoint]
    history: HistoryCache
    incidents: dict[str, Incident]
    plans: dict[str, Plan]
    resumptions: dict[str, Resumption]
    learning: dict[str, Any]
    settings: dict[str, Any]
    commands_executed: int
    observed: dict[str, int]
    usage: UsageLedger


def snapshot_of(s: State, *, full: bool = False, checkpoint_labels: bool = False) -> dict[str, Any]:
    """A JSON-ready dict of the hashed state; ``full``: finished workflows and checkpoint
    records whole (with their labels when ``checkpoint_labels``, as the oldest stores
    wrote them) rather than as digests."""
    snap: dict[str, Any] = {
        "seq": s.seq,
        "clock": s.clock,
        "pools": {k: v.model_dump(mode="json") for k, v in sorted(s.pools.items())},
        "agents": {k: v.model_dump(mode="json") for k, v in sorted(s.agents.items())},
        "workflows": {k: v.model_dump(mode="json") for k, v in sorted(s.workflows.items())},
        "tasks": {k: v.model_dump(mode="json") for k, v in sorted(s.tasks.items())},
    }
    if full:
        drop = None if checkpoint_labels else {"label"}
        snap["finished"] = {k: v.model_dump(mode="json") for k, v in sorted(s.finished.items())}
        snap["checkpoints"] = {
            str(k): v.model_dump(mode="json", exclude=drop) for k, v in sorted(s.checkpoints.items())
        }
    else:
        snap[DIGEST_KEYS["finished"]] = s.history.digest("finished", s.finished)
        snap[DIGEST_KEYS["checkpoints"]] = s.history.digest("checkpoints", s.checkpoints)
    snap |= {
        "incidents": {k: v.model_dump(mode="json") for k, v in sorted(s.incidents.items())},
        "plans": {k: v.model_dump(mode="json") for k, v in sorted(s.plans.items())},
        "resumptions": {k: v.snapshot() for k, v in sorted(s.resumptions.items())},
        "learning": s.learning,
        "settings": s.settings,
        "commands_executed": s.commands_executed,
        "observed": dict(sorted(s.observed.items())),
    }
    if not s.usage.empty():  # absent until usage is recorded: older logs replay to their hashes
        snap["usage"] = s.usage.model_dump(mode="json")
    return snap


def restored_task(data: Any) -> Task:
    """A snapshot's task, validated; a context with nothing of its own is the shared one
    of its values, as the folds leave most tasks (four objects fewer per task). -0.0
    keeps its own context: it encodes differently from the shared 0.0."""
    t = Task.model_validate(data)
    c = t.context
    if not (c.inputs or c.partial_results or c.last_output) and copysign(1.0, c.progress) > 0:
        if c.progress == 0.0:
            t.context = EMPTY_CONTEXT
        elif c.progress == 1.0:
            t.context = DONE_CONTEXT
    return t


def load_into(
    s: State, snap: dict[str, Any], *, keep_history: bool = False, history: HistoryRows | None = None
) -> None:
    """Put a snapshot's records into ``s`` (its derived indexes are the caller's to rebuild).

    The snapshot is consumed, not copied: pydantic builds new models from it and the
    plain-dict parts are taken over (callers pass a freshly decoded snapshot or copy it
    themselves). A compact snapshot takes its history parts from ``history`` (the
    entries a store keeps, checked against its digests by whoever read them)."""
    s.pools = {k: Pool.model_validate(v) for k, v in snap["pools"].items()}
    s.agents = {k: Agent.model_validate(v) for k, v in snap["agents"].items()}
    s.workflows = {k: Workflow.model_validate(v) for k, v in snap["workflows"].items()}
    s.tasks = {k: restored_task(v) for k, v in snap["tasks"].items()}
    records: dict[int, Checkpoint] | None = None
    if is_compact(snap):
        if history is None:
            raise ValueError("a compact snapshot is loaded with its history entries")
        s.finished, records = s.history.load(history)
    else:
        s.finished = {k: FinishedWorkflow.model_validate(v) for k, v in snap.get("finished", {}).items()}
    s.settings = snap.get("settings", {})
    if keep_history:
        return
    s.seq = snap["seq"]
    s.clock = snap["clock"]
    s.checkpoints = (
        records
        if records is not None
        else {int(k): Checkpoint.model_validate(v) for k, v in snap["checkpoints"].items()}
    )
    s.incidents = {k: Incident.model_validate(v) for k, v in snap["incidents"].items()}
    s.plans = {k: Plan.model_validate(v) for k, v in snap["plans"].items()}
    s.resumptions = {k: Resumption.model_validate(v) for k, v in snap["resumptions"].items()}
    s.learning = snap["learning"]
    s.commands_executed = snap["commands_executed"]
    s.observed = snap["observed"]
    s.usage = UsageLedger.model_validate(snap["usage"]) if "usage" in snap else UsageLedger()

"""Whether a plan step still has something to act on when it is due.

A plan is drafted from the state when its incident opened. By the time a step runs (an
operator read the plan for a minute, an earlier step took a while) a workflow it freezes
or pauses may have finished, an agent it quarantines may be gone, a failed agent it
replaces may be back, a task it acts on may have ended. The step's command is bound with
the command language and every workflow, agent and task it names is checked against the
state now (:func:`check`). The executor skips a step that changes state when every target
it names has ended (:func:`ended_targets`): its command would be refused for nothing left
to do, and the plan goes on. A target that does not exist at all, or one still there, is
not an ending: such a step runs, and fails if its command fails. The console marks a
pending step with any target that no longer fits (:func:`check`) before it is approved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..models import AgentStatus, TaskStatus, WorkflowStatus
from ..timefmt import clock

if TYPE_CHECKING:
    from ..commands.binding import Bound
    from ..commands.registry import Registry
    from ..projection import State

WORKFLOW_KEYS = frozenset(
    {"workflow", "workflows", "workflow_id", "affected", "affected_workflow", "primary_workflow", "dependent_workflow"}
)
"""Payload keys whose strings name workflows (anywhere in the payload, lists and nested objects)."""
AGENT_KEYS = frozenset({"agent", "agents"})
REPLACED_AGENT_KEYS = frozenset({"failed_agents"})
"""Agents a step replaces: they must still be failed or unreachable for the step to be needed."""
TASK_KEYS = frozenset({"task", "tasks"})
LIVE_WORKFLOW = frozenset({WorkflowStatus.PENDING, WorkflowStatus.RUNNING, WorkflowStatus.PAUSED})
GONE_AGENT = frozenset({AgentStatus.FAILED, AgentStatus.RETIRED})
NEEDS_REPLACING = frozenset({AgentStatus.FAILED, AgentStatus.UNREACHABLE, AgentStatus.RETIRED})
SETTLED_TASK = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})


@dataclass(frozen=True)
class Targets:
    """What a step's command names."""

    workflows: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    replaced: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TargetCheck:
    """One named target against the state now."""

    target: str
    """``workflow ID``, ``agent ID``, ``task ID``."""
    problem: str | None = None
    """Why it no longer fits the step (None: it does)."""
    ended: bool = False
    """It was there and has ended (finished, gone, recovered, settled): the step has
    nothing left to do for it. False for a target that never existed."""


def _names(data: Any, keys: frozenset[str], into: set[str], under: bool = False) -> None:
    """Every string under one of ``keys`` anywhere in ``data`` (lists and nested objects)."""
    if isinstance(data, dict):
        for k, v in data.items():
            _names(v, keys, into, under=k in keys)
    elif isinstance(data, list):
        for v in data:
            _names(v, keys, into, under)
    elif under and isinstance(data, str) and data:
        into.add(data)


def bind_step(command: str, registry: Registry) -> Bound | None:
    """The step's command bound in ``registry``, the language it runs in (None: it does not bind)."""
    from ..commands.binding import bind
    from ..commands.grammar import CommandSyntaxError, parse
    from ..commands.responses import CommandError

    try:
        return bind(parse(command), registry)
    except (CommandSyntaxError, CommandError):
        return None


def targets_of(bound: Bound) -> Targets:
    data = bound.payload.model_dump(mode="json")
    found: dict[frozenset[str], set[str]] = {k: set() for k in (WORKFLOW_KEYS, AGENT_KEYS, REPLACED_AGENT_KEYS)}
    for keys, into in found.items():
        _names(data, keys, into)
    tasks: set[str] = set()
    _names(data, TASK_KEYS, tasks)
    wfs = found[WORKFLOW_KEYS] | ({bound.workflow_id} if bound.workflow_id else set())
    # A task is named as WORKFLOW/TASK, or by its own name under the workflow the line names.
    full = {t if "/" in t or not bound.workflow_id else f"{bound.workflow_id}/{t}" for t in tasks}
    return Targets(frozenset(wfs), frozenset(found[AGENT_KEYS]), frozenset(found[REPLACED_AGENT_KEYS]), frozenset(full))


def _workflow(s: State, wid: str) -> TargetCheck:
    what = f"workflow {wid}"
    wf = s.workflows.get(wid)
    if wf is not None and wf.status in LIVE_WORKFLOW:
        return TargetCheck(what)
    done = s.finished.get(wid)
    if done is not None:
        at = done.finished_at
        since = f" (since {clock(at)})" if at is not None else ""
        return TargetCheck(what, f"{what} is {done.status.value}{since}", ended=True)
    if wf is not None:
        return TargetCheck(what, f"{what} is {wf.status.value}", ended=True)
    return TargetCheck(what, f"{what} does not exist")


def _agent(s: State, a: str, replaced: bool) -> TargetCheck:
    what = f"agent {a}"
    ag = s.agents.get(a)
    if ag is None:
        return TargetCheck(what, f"{what} does not exist")
    if replaced and ag.status not in NEEDS_REPLACING:
        return TargetCheck(what, f"{what} is {ag.status.value}: it needs no replacement", ended=True)
    if not replaced and ag.status in GONE_AGENT:
        return TargetCheck(what, f"{what} is {ag.status.value}", ended=True)
    return TargetCheck(what)


def _task(s: State, key: str) -> TargetCheck:
    what = f"task {key}"
    t = s.tasks.get(key)
    if t is not None:
        ended = t.status in SETTLED_TASK
        return TargetCheck(what, f"{what} is {t.status.value}" if ended else None, ended=ended)
    done = s.finished.get(key.split("/", 1)[0])
    if done is not None:  # archived with its workflow
        return TargetCheck(what, f"{what} ended with its workflow ({done.status.value})", ended=True)
    return TargetCheck(what, f"{what} does not exist")


def check(s: State, found: Targets) -> list[TargetCheck]:
    """Each target the step names, against the state now."""
    out = [_workflow(s, w) for w in sorted(found.workflows)]
    # Replacement agents an earlier step creates are not checked: they do not exist yet.
    out += [_agent(s, a, a in found.replaced) for a in sorted(found.agents | found.replaced)]
    out += [_task(s, k) for k in sorted(found.tasks)]
    return out


def ended_targets(s: State, command: str, registry: Registry) -> list[TargetCheck]:
    """The targets of a step that changes state, when every one it names has ended
    (the step is skipped); empty when it is to run: it names none, one of them is
    still there or never existed, it only reads, or it does not bind (its command
    then fails as it would have)."""
    bound = bind_step(command, registry)
    if bound is None or not bound.spec.mutates:
        return []
    checks = check(s, targets_of(bound))
    return checks if checks and all(c.ended for c in checks) else []

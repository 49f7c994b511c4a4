"""What a rollback does to each workflow, in the terms an operator reads: status, phase
and progress before -> after.

A preview reads the checkpoint's snapshot the way the ``STATE_RESTORED`` reducer applies
it (:func:`core.work_reducers.restored`): a workflow live at the checkpoint comes back
as it was then, one finished then stays finished as it was, one created since is
removed. The rows of a rollback that ran are measured on the state before and after.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..models import FinishedWorkflow, Task, Workflow
from ..projection import State


class WorkflowBrief(BaseModel):
    status: str
    phase: str | None
    """The first phase with work left (None: none left, or the workflow is finished)."""
    progress: float
    """Share of its tasks done, 0..1 (a running task counts its reported progress)."""


class RollbackRow(BaseModel):
    workflow: str
    before: WorkflowBrief | None
    """None: the workflow does not exist before."""
    after: WorkflowBrief | None
    """None: the rollback removes it (it was created after the checkpoint)."""

    @property
    def changed(self) -> bool:
        return self.before != self.after


def brief(s: State, wf_id: str) -> WorkflowBrief | None:
    """The workflow's status, phase and progress in ``s`` (None: ``s`` does not know it)."""
    wf = s.any_workflow(wf_id)
    if wf is None:
        return None
    phase = s.current_phase(wf_id) if wf_id in s.workflows else None
    return WorkflowBrief(status=wf.status.value, phase=phase, progress=round(s.workflow_progress(wf_id), 4))


def briefs(s: State, ids: list[str]) -> dict[str, WorkflowBrief | None]:
    return {w: brief(s, w) for w in ids}


def affected(s: State, snap: dict[str, Any], workflow: str | None = None) -> list[str]:
    """The workflows a rollback to ``snap`` touches (all, or the one named)."""
    if workflow:
        return [workflow]
    return sorted(set(snap["workflows"]) | set(snap.get("finished", {})) | set(s.workflows) | set(s.finished))


def snapshot_state(snap: dict[str, Any], ids: list[str]) -> State:
    """The workflows ``ids`` as a rollback to ``snap`` leaves them, as a State to read."""
    out = State({})  # only read: no event is folded into it
    for wf_id in ids:
        live = snap["workflows"].get(wf_id)
        if live is None:
            done = snap.get("finished", {}).get(wf_id)
            if done is not None:
                out.finished[wf_id] = FinishedWorkflow.model_validate(done)
            continue
        wf = Workflow.model_validate(live)
        out.workflows[wf_id] = wf
        for key in wf.tasks:
            out.tasks[key] = Task.model_validate(snap["tasks"][key])
    return out


def preview(s: State, snap: dict[str, Any], workflows: list[str] | None = None) -> list[RollbackRow]:
    """Each workflow a rollback to ``snap`` touches: as it is in ``s`` -> as it will be."""
    ids = workflows or affected(s, snap)
    then = snapshot_state(snap, ids)
    return [RollbackRow(workflow=w, before=brief(s, w), after=brief(then, w)) for w in ids]


def measured(before: dict[str, WorkflowBrief | None], s: State) -> list[RollbackRow]:
    """The rows of a rollback that ran: ``before`` (taken first) -> ``s`` now."""
    return [RollbackRow(workflow=w, before=b, after=brief(s, w)) for w, b in before.items()]

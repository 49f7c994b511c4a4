"""The console says "nothing will run" when every workflow of the database already ended,
counting the finished workflows that left the hot state; a live workflow says nothing."""

from __future__ import annotations

from types import SimpleNamespace

from core.models import WorkflowStatus
from tui.dialogs import finished_note


def _wf(status: WorkflowStatus) -> SimpleNamespace:
    return SimpleNamespace(status=status)


def test_all_finished_moved_out_of_the_hot_state():
    s = SimpleNamespace(workflows={}, finished={"a": _wf(WorkflowStatus.COMPLETED), "b": _wf(WorkflowStatus.FAILED)})
    note = finished_note(s)  # type: ignore[arg-type]
    assert note is not None and "nothing will run" in note and "1 of 2 completed" in note


def test_a_live_workflow_says_nothing():
    s = SimpleNamespace(workflows={"c": _wf(WorkflowStatus.RUNNING)}, finished={"a": _wf(WorkflowStatus.COMPLETED)})
    assert finished_note(s) is None  # type: ignore[arg-type]
    assert finished_note(SimpleNamespace(workflows={}, finished={})) is None  # type: ignore[arg-type]

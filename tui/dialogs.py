"""What the console's confirmations and toasts say, computed from the state and the
response, so that every dialog names what will happen and every toast what did.

Buttons say what they do ("Cancel workflow" / "Keep running"); a toast after a
command repeats the command's own summary (``R-1 held at step 2``), never a bare
"done"; a drill dialog says which of its steps will wait for the operator under the
approval policy in force (and on real agents offers only the drills that run there);
approving while the simulated clock is paused says that
the approved steps run when the clock runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core import timefmt
from core.models import FinishedWorkflow, Workflow, WorkflowStatus

if TYPE_CHECKING:
    from core.config import Config
    from core.projection import State


@dataclass(frozen=True)
class Confirm:
    title: str
    detail: RenderableType
    confirm: str
    cancel: str


WORKFLOW_VERBS = {
    "pause_workflow": (
        "Pause",
        "pause",
        "{its} running tasks are paused (SIGSTOP on real agents) and keep their context; r resumes them",
        "Keep running",
    ),
    "cancel_workflow": (
        "Cancel workflow",
        "cancel",
        "{its} running tasks are stopped and released; a cancelled workflow does not come back",
        "Keep running",
    ),
    "resume_workflow": ("Resume", "resume", "{its} paused tasks continue", "Keep paused"),
    "start_workflow": ("Start", "start", "{it_is} queued and dispatched as agents free up", "Keep pending"),
}


def workflow_confirm(state: State, action: str, ids: list[str]) -> Confirm:
    """The dialog for ``action`` on ``ids``: every workflow listed with its state now."""
    label, verb, what, keep = WORKFLOW_VERBS[action]
    t = Table(box=None, show_header=True, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("workflow", "band", "status", "busy agents", "progress"):
        t.add_column(col, no_wrap=True)
    for wid in ids:
        wf = state.workflows.get(wid)
        if wf is None:
            t.add_row(wid, "", "gone", "", "")
            continue
        t.add_row(
            wid,
            f"{wf.band.value} {wf.priority}",
            wf.status.value,
            str(state.in_use(wid).agents),
            f"{state.workflow_progress(wid) * 100:.0f}%",
        )
    n = len(ids)
    title = f"{verb.capitalize()} {ids[0]}?" if n == 1 else f"{verb.capitalize()} {n} workflows?"
    what = what.format(its="its" if n == 1 else "their", it_is="it is" if n == 1 else "they are")
    detail = Group(
        Text(f"This will {verb} {'this workflow' if n == 1 else f'these {n} workflows'}: {what}."), Text(""), t
    )
    return Confirm(title, detail, label + ("s" if n > 1 and label.endswith("workflow") else ""), keep)


def outcome_text(res: dict[str, Any], what: str) -> str:
    """A toast for a command's response: its own summary on success, code and message on error."""
    if res.get("status") == "success":
        result = res.get("result")
        summary = result.get("summary") if isinstance(result, dict) else None
        named = what.split(" ", 1)[-1]  # what the action was on: "PLAN-0001" of "Reject PLAN-0001"
        if summary and (str(summary).startswith(what) or named in str(summary)):
            return str(summary)  # the summary already names it: say it once
        return f"{what}: {summary}" if summary else f"{what}: done"
    err = res.get("error") or {}
    return f"{what}: {err.get('code', 'ERROR')}: {err.get('message', '')}"


def drill_confirm(config: Config, name: str, simulated: bool) -> Confirm | str:
    """The drill dialog, or why this drill cannot start on this runtime."""
    # the incident pipeline loads after the first frame (tui.link_open)
    from core.incidents.drills import LIVE_DRILLS, LIVE_WARMUP_S

    if not simulated and name not in LIVE_DRILLS:
        return (
            f"the {name} drill runs on the simulated runtime only; on real agents: {', '.join(LIVE_DRILLS)}. "
            "Nothing was started"
        )
    manual = sorted(config.approval.manual)
    auto = sorted(config.approval.auto)
    waits = (
        f"steps of kind {', '.join(manual)} wait for your approval (a); "
        if manual
        else "no step waits for approval under this policy; "
    )
    runs = f"{', '.join(auto)} steps run on their own" if auto else "no step runs on its own"
    where = (
        "into the simulated fleet"
        if simulated
        else f"into this fleet of real processes, on the wall clock, {timefmt.duration(LIVE_WARMUP_S)} after it is armed"
    )
    detail = Text(
        f"The drill injects the {name} fault {where}. When the incident opens, its plan "
        f"follows the approval policy in force ([approval] in the config): {waits}{runs}."
    )
    return Confirm(f"Start drill {name!r}?", detail, "Start drill", "Cancel")


def drill_cancel_confirm(rec: dict[str, Any]) -> Confirm:
    """The dialog before ``/host drill cancel``: what cancelling does at this point of the drill."""
    name = str(rec.get("name"))
    if rec.get("status") == "armed":
        at = rec.get("inject_at")
        when = f" (due at {timefmt.clock(at)})" if isinstance(at, (int, float)) else ""
        what = f"Its fault has not been injected yet{when}: cancelling means it never is."
    else:
        at = rec.get("injected_at")
        when = f" at {timefmt.clock(at)}" if isinstance(at, (int, float)) else ""
        what = (
            f"Its fault was injected{when}: what it did stays as the environment has it (a load spike runs out, "
            "a partition heals on schedule) and fault steps still to come are dropped. Its incident and plan, "
            "if any, stay as they are."
        )
    return Confirm(
        f"Cancel drill {name!r}?",
        Text(f"{what} Another drill can start once this one is cancelled."),
        "Cancel drill",
        "Keep it running",
    )


def approved_while_paused(simulated: bool, clock_running: bool) -> str | None:
    """What to add after approving a plan while nothing will run it yet."""
    if simulated and not clock_running:
        return "the simulated clock is paused: the approved steps run when it runs (space)"
    return None


def finished_note(state: State) -> str | None:
    """When every workflow of the database already ended (a second ``opsdeck run`` of a file)."""
    # Finished workflows leave the hot state: they are counted from the summaries kept for them.
    wfs: list[Workflow | FinishedWorkflow] = [*state.workflows.values(), *state.finished.values()]
    if not wfs or any(
        w.status not in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED) for w in wfs
    ):
        return None
    done = sum(1 for w in wfs if w.status is WorkflowStatus.COMPLETED)
    return (
        f"every workflow in this database already ended ({done} of {len(wfs)} completed): nothing will run. "
        "This is the earlier result; run the file with another --db to run it again"
    )

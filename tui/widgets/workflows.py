"""Workflows: band, status, phase, progress and htop-style allocation-vs-use meters.

Columns have a header line; names are fitted to the width with a middle ellipsis
that keeps them distinct; finished workflows (completed, cancelled) collapse into
one summary row unless ``F`` shows them; ``s`` cycles the sort key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widget import Widget

from core.models import Band, WorkflowStatus

from ..figures import SPEND_W, alloc_meter, budget_level, fmt_spend
from ..style import BAND_COLOR, WF_STATUS_COLOR, color
from .live_list import LiveList, Row, distinct_names

if TYPE_CHECKING:
    from core.host.link import Link
    from core.models import FinishedWorkflow, Workflow

BAND_TAG = {Band.CRITICAL: "CRIT", Band.HIGH: "HIGH", Band.MEDIUM: "MED ", Band.LOW: "LOW "}
STATUS_TAG = {
    WorkflowStatus.PENDING: "pend",
    WorkflowStatus.RUNNING: "run ",
    WorkflowStatus.PAUSED: "PAUS",
    WorkflowStatus.COMPLETED: "done",
    WorkflowStatus.FAILED: "FAIL",
    WorkflowStatus.CANCELLED: "canc",
}
STATUS_ORDER = {
    WorkflowStatus.RUNNING: 0,
    WorkflowStatus.PAUSED: 1,
    WorkflowStatus.PENDING: 2,
    WorkflowStatus.FAILED: 3,
    WorkflowStatus.COMPLETED: 4,
    WorkflowStatus.CANCELLED: 5,
}
FINISHED = (WorkflowStatus.COMPLETED, WorkflowStatus.CANCELLED)
LEGEND = "| in use  · allocated, idle  ! over allocation"


@dataclass(frozen=True)
class Layout:
    id_w: int
    phase_w: int
    meters: int
    """How many meters fit: 3 (cpu, mem, agents), or 1 (cpu)."""
    bar_w: int
    numbers: bool
    spend: bool = False
    """A tokens/cost column (once tasks have reported usage)."""


def layout(w: int, longest: int, spend: bool = False) -> Layout:
    """Column widths for a row of ``w`` cells: whole names first (up to 26), meters after."""
    phase_w = 10 if w >= 90 else (7 if w >= 60 else 0)
    spend = spend and w >= 60
    base = 6 + 1 + 5 + (phase_w + 1 if phase_w else 0) + 4 + (SPEND_W + 1 if spend else 0)
    id_w = max(min(longest, 26, w - base - 27), 12)
    meter_total = max(w - base - id_w, 8)
    meters = 3 if meter_total >= 27 else 1
    per = meter_total // meters
    numbers = per >= 22
    bar_w = max(per - 1 - (9 if numbers else 0), 3)
    return Layout(id_w, phase_w, meters, bar_w, numbers, spend)


SORTS = {
    "status": lambda s, wf: (STATUS_ORDER[wf.status], -wf.priority, wf.id),
    "priority": lambda s, wf: (-wf.priority, wf.id),
    "name": lambda s, wf: (wf.id,),
    "progress": lambda s, wf: (-s.workflow_progress(wf.id), wf.id),
    "cpu": lambda s, wf: (-s.in_use(wf.id).cpu_cores, wf.id),
}


class Workflows(LiveList):
    NAME = "Workflows"
    SORTS = tuple(SORTS)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("F", "toggle_finished", "Show/hide finished", show=True),
        Binding("m", "toggle_mark", "Mark", show=True),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.show_finished = False
        self.marked: set[str] = set()
        """Workflow ids marked with ``m``: p / r / S / X apply to all of them (one confirmation)."""
        self._layout = layout(80, 12)

    def action_toggle_mark(self) -> None:
        oid = self.selected_id
        if not oid or not oid.startswith("wf:"):
            return
        wid = oid[3:]
        self.marked.symmetric_difference_update({wid})
        if self.highlighted is not None and self.highlighted + 1 < self.option_count:
            self.highlighted += 1
        self.post_message(self.ViewChanged())

    def action_toggle_finished(self) -> None:
        self.show_finished = not self.show_finished
        self.notify("finished workflows shown" if self.show_finished else "finished workflows collapsed", timeout=2)
        self.post_message(self.ViewChanged())

    def header(self, width: int) -> Text:
        lay = self._layout
        c = lambda n: color(self.app, n)  # noqa: E731
        t = Text(no_wrap=True, overflow="ellipsis", style=f"bold {c('secondary')}")
        t.append(" band ")
        t.append(f"{'workflow':<{lay.id_w}} ")
        t.append("stat ")
        if lay.phase_w:
            t.append(f"{'phase':<{lay.phase_w}} ")
        t.append("done")
        if lay.spend:
            t.append(f" {'tokens    cost':>{SPEND_W}}")
        names = ("cpu cores", "memory GB", "agents")[: lay.meters]
        for n in names:
            seg = lay.bar_w + (9 if lay.numbers else 0)
            label = f"{n} used/alloc" if lay.numbers and len(n) + 11 <= seg else n
            t.append(" " + f"{label:^{seg}}")
        return t

    def rows(self, engine: Link) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        w = self.row_width
        every = s.all_workflows()  # live ones and finished summaries
        finished = [wf for wf in every if wf.status in FINISHED]
        shown = every if self.show_finished else [wf for wf in every if wf.status not in FINISHED]
        key = SORTS[self.sort_key]
        shown.sort(key=lambda wf: key(s, wf))
        lay = self._layout = layout(w, max((len(wf.id) for wf in shown), default=12), not s.usage.empty())
        names = distinct_names([wf.id for wf in shown], lay.id_w)
        active = len(every) - len(finished)
        self.marked &= set(s.workflows)
        self.note = f"{active} active, {len(finished)} finished" + (
            "" if self.show_finished or not finished else " (F shows)"
        )
        if self.marked:
            self.note += f" · {len(self.marked)} marked (m)"
        out: list[Row] = [(f"wf:{wf.id}", self._row(s, wf, names[wf.id], lay, c), False) for wf in shown]
        if finished and not self.show_finished:
            t = Text(no_wrap=True, overflow="ellipsis", style=c("foreground-muted"))
            done = sum(1 for wf in finished if wf.status is WorkflowStatus.COMPLETED)
            t.append(f" ✓ {done} completed, {len(finished) - done} cancelled — F shows them")
            out.append(("finished", t, True))
        if not out:
            out.append(
                (
                    "empty",
                    Text("no workflows — opsdeck demo opens a simulated fleet", style=c("foreground-muted")),
                    True,
                )
            )
        return out

    def _row(self, s, wf: Workflow | FinishedWorkflow, name: str, lay: Layout, c) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("▌" if wf.id in self.marked else " ", style=f"bold {c('accent')}")
        t.append(f"{BAND_TAG[wf.band]} ", style=f"bold {c(BAND_COLOR[wf.band])}")
        t.append(f"{name:<{lay.id_w}} ", style="bold")
        t.append(f"{STATUS_TAG[wf.status]} ", style=c(WF_STATUS_COLOR[wf.status]))
        if lay.phase_w:
            phase = s.current_phase(wf.id) or ("—" if wf.status is not WorkflowStatus.COMPLETED else "✓")
            if wf.frozen:
                phase = "FROZEN"
            t.append(f"{phase[: lay.phase_w]:<{lay.phase_w}} ", style=c("error") if wf.frozen else c("secondary"))
        prog = s.workflow_progress(wf.id) * 100
        t.append(f"{prog:3.0f}%", style=c("primary"))
        if lay.spend:
            spent = s.usage.spend_of("workflow", wf.id)
            t.append(" " + fmt_spend(spent), style=c(budget_level(s.usage.budget_of("workflow", wf.id), spent)))
        use = s.in_use(wf.id)
        alloc = wf.allocation
        meters = (
            (use.cpu_cores, alloc.cpu_cores, "{:.1f}/{:.1f}"),
            (use.memory_gb, alloc.memory_gb, "{:.1f}/{:.0f}"),
            (float(use.agents), float(alloc.agents), "{:.0f}/{:.0f}"),
        )[: lay.meters]
        for used, al, fmt in meters:
            t.append(" ")
            t.append_text(alloc_meter(used, al, lay.bar_w, c("success"), c("foreground-muted"), c("error")))
            if lay.numbers:
                t.append(f"{fmt.format(used, al):>9}", style=c("foreground-muted"))
        return t

    def refresh_from(self, engine: Link) -> None:
        rows = self.rows(engine)
        self.sync(rows)
        pane = self.parent
        if isinstance(pane, Widget) and pane.border_subtitle is None:  # set once: setting repaints the pane
            pane.border_subtitle = LEGEND

"""Workflows: band, status, phase, progress and htop-style allocation-vs-use meters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from core.models import Band, WorkflowStatus

from ..meter import alloc_meter
from ..style import BAND_COLOR, WF_STATUS_COLOR, color
from .live_list import LiveList, Row

if TYPE_CHECKING:
    from core.engine import Engine

BAND_TAG = {Band.CRITICAL: "CRIT", Band.HIGH: "HIGH", Band.MEDIUM: "MED ", Band.LOW: "LOW "}
STATUS_TAG = {
    WorkflowStatus.PENDING: "pend",
    WorkflowStatus.RUNNING: "run ",
    WorkflowStatus.PAUSED: "PAUS",
    WorkflowStatus.COMPLETED: "done",
    WorkflowStatus.FAILED: "FAIL",
    WorkflowStatus.CANCELLED: "canc",
}
STATUS_ORDER = {WorkflowStatus.RUNNING: 0, WorkflowStatus.PAUSED: 1, WorkflowStatus.PENDING: 2, WorkflowStatus.FAILED: 3, WorkflowStatus.COMPLETED: 4, WorkflowStatus.CANCELLED: 5}


class Workflows(LiveList):
    BORDER_TITLE = "Workflows"

    def rows(self, engine: Engine) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        w = self.row_width
        id_w = 22 if w >= 110 else (16 if w >= 70 else 12)
        phase_w = 10 if w >= 90 else (7 if w >= 50 else 0)
        fixed = 5 + id_w + 1 + 5 + phase_w + 5
        meter_total = max(w - fixed, 8)
        only_cpu = meter_total < 30
        label = meter_total >= 45
        per = meter_total // 3
        numbers = per >= 22
        bar_w = max(per - (4 if label else 1) - (9 if numbers else 0) - 1, 3)
        out: list[Row] = []
        wfs = sorted(s.workflows.values(), key=lambda x: (STATUS_ORDER[x.status], -x.priority, x.id))
        for wf in wfs:
            t = Text(no_wrap=True, overflow="ellipsis")
            bc = c(BAND_COLOR[wf.band])
            t.append(f"{BAND_TAG[wf.band]} ", style=f"bold {bc}")
            name = wf.id if len(wf.id) <= id_w else wf.id[: id_w - 1] + "…"
            t.append(f"{name:<{id_w}} ", style="bold")
            t.append(f"{STATUS_TAG[wf.status]} ", style=c(WF_STATUS_COLOR[wf.status]))
            phase = s.current_phase(wf.id) or ("—" if wf.status is not WorkflowStatus.COMPLETED else "✓")
            if wf.frozen:
                phase = "FROZEN"
            if phase_w:
                t.append(f"{phase[:phase_w]:<{phase_w}}", style=c("error") if wf.frozen else c("secondary"))
            prog = s.workflow_progress(wf.id) * 100
            t.append(f"{prog:4.0f}%", style=c("primary"))
            use = s.in_use(wf.id)
            alloc = wf.allocation
            meters = (
                ("cpu", use.cpu_cores, alloc.cpu_cores, "{:.1f}/{:.1f}"),
                ("mem", use.memory_gb, alloc.memory_gb, "{:.0f}/{:.0f}G"),
                ("agt", float(use.agents), float(alloc.agents), "{:.0f}/{:.0f}"),
            )
            if only_cpu:
                meters = meters[:1]
                bar_w = max(meter_total - 5, 3)
            for lab, used, al, fmt in meters:
                t.append(" ")
                if label or only_cpu:
                    t.append(f"{lab}", style=c("foreground-muted"))
                t.append_text(alloc_meter(used, al, bar_w, c("success"), c("foreground-muted"), c("error")))
                if numbers:
                    t.append(f"{fmt.format(used, al):>9}", style=c("foreground-muted"))
            out.append((f"wf:{wf.id}", t, False))
        if not out:
            out.append(("empty", Text("no workflows", style=c("foreground-muted")), True))
        return out

    def refresh_from(self, engine: Engine) -> None:
        self.sync(self.rows(engine))

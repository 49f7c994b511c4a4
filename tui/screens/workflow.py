"""A workflow: its task DAG with states, its checkpoints and its events."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core import timefmt
from core.models import FinishedWorkflow, Task, TaskStatus

from ..figures import alloc_meter
from ..log_source import LogFilter
from ..style import BAND_COLOR, TASK_STATUS_COLOR, WF_STATUS_COLOR, color
from .detail import DetailScreen

TASK_GLYPH = {
    TaskStatus.PENDING: "○",
    TaskStatus.RUNNING: "▶",
    TaskStatus.PAUSED: "‖",
    TaskStatus.COMPLETED: "✓",
    TaskStatus.FAILED: "✖",
}


class WorkflowScreen(DetailScreen):
    archived: list[Task] | None = None
    """A finished workflow's tasks, read back from the archive once."""

    def on_mount(self) -> None:
        super().on_mount()
        if self.key in self.engine.state.finished:
            self.run_worker(self._load_archive(), exit_on_error=False)

    async def _load_archive(self) -> None:
        record = await self.engine.archived(self.key)
        self.archived = [Task.model_validate(t) for t in record["tasks"]] if record else []
        self.redraw()

    def title_text(self) -> str:
        wf = self.engine.state.any_workflow(self.key)
        return f"workflow {self.key} — {wf.name}" if wf else f"workflow {self.key} (gone)"

    def events_filter(self) -> LogFilter:
        return LogFilter(workflow=self.key)

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = self.engine.state
        wf = s.any_workflow(self.key)
        if wf is None:
            return Text(f"no workflow {self.key!r}", style=c("error"))
        head = Text()
        head.append(f"{wf.band.value} ({wf.priority})", style=f"bold {c(BAND_COLOR[wf.band])}")
        head.append("  status ")
        head.append(wf.status.value, style=f"bold {c(WF_STATUS_COLOR[wf.status])}")
        head.append(f"  phase {s.current_phase(wf.id) or '—'}  progress {s.workflow_progress(wf.id) * 100:.0f}%")
        if wf.depends_on:
            head.append(f"  depends on {', '.join(wf.depends_on)}")
        if wf.frozen:
            head.append("  FROZEN", style=f"bold {c('error')}")
        use = s.in_use(wf.id)
        res = Text()
        for lab, u, a in (
            ("cpu", use.cpu_cores, wf.allocation.cpu_cores),
            ("mem GB", use.memory_gb, wf.allocation.memory_gb),
            ("agents", use.agents, wf.allocation.agents),
        ):
            res.append(f"{lab} ")
            res.append_text(alloc_meter(float(u), float(a), 22, c("success"), c("foreground-muted"), c("error")))
            res.append(f" {u:g}/{a:g}   ")
        times = Text(
            f"created {timefmt.clock(wf.created_at)}  started {timefmt.clock(wf.started_at) if wf.started_at is not None else '—'}  finished {timefmt.clock(wf.finished_at) if wf.finished_at is not None else '—'}",
            style=c("foreground-muted"),
        )
        dag = Table(
            title="Task DAG", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}"
        )
        for col in ("phase", "task", "state", "agent", "after", "progress", "tries"):
            dag.add_column(col, no_wrap=True)
        crit = set(s.critical_path(wf.id))
        last_phase = None
        tasks = (self.archived or []) if isinstance(wf, FinishedWorkflow) else s.workflow_tasks(wf.id)
        for t in tasks:
            name = t.id.split("/", 1)[-1]
            deps = ", ".join(d.split("/", 1)[-1] for d in t.depends_on) or "—"
            st = (
                Text("⌨ waiting input", style=f"bold {c('warning')}")
                if t.awaiting_input
                else Text(f"{TASK_GLYPH[t.status]} {t.status.value}", style=c(TASK_STATUS_COLOR[t.status]))
            )
            prog = 1.0 if t.status is TaskStatus.COMPLETED else t.context.progress
            dag.add_row(
                Text(t.phase, style="bold" if t.phase != last_phase else c("foreground-muted")),
                Text(name + (" ★" if t.id in crit else ""), style="bold" if t.id in crit else ""),
                st,
                t.agent or "—",
                deps,
                f"{prog * 100:3.0f}%",
                str(t.attempts),
            )
            last_phase = t.phase
        cps = Table(
            title="Checkpoints", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}"
        )
        for col in ("id", "seq", "time", "kind", "label", "scope"):
            cps.add_column(col, no_wrap=True)
        for cp in sorted(s.checkpoints.values(), key=lambda x: x.id, reverse=True)[:10]:
            if cp.workflow in (None, wf.id):
                cps.add_row(
                    str(cp.id), str(cp.seq), timefmt.clock(cp.ts), cp.kind, cp.label or "", cp.workflow or "all"
                )
        legend = Text("★ critical path   b: checkpoints / rollback", style=c("foreground-muted"))
        return Group(head, res, times, Text(""), dag, legend, Text(""), cps, Text(""), self.events_block())

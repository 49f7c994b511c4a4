"""An agent: status, its process (pid, limits and the mechanism enforcing them), the last
output of its task following live, task history and usage graphs.

The process facts come from where the runtime put them: the local runtime records each
agent host's pid and create time in the database's ``processes`` table and the limit
mechanisms in force in the ``local_runtime`` (or ``ray_runtime``) setting; on the
simulated runtime there is no process and the screen says so.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..log_source import LogFilter, recent_matching
from ..meter import fmt_clock, sparkline
from ..style import AGENT_GLYPH, TASK_STATUS_COLOR, color
from .detail import DetailScreen

OUTPUT_LINES = 12
RUNTIME_SETTINGS = ("local_runtime", "ray_runtime")


def runtime_facts(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The runtime's description the engine recorded (None: the simulated runtime)."""
    for key in RUNTIME_SETTINGS:
        v = settings.get(key)
        if isinstance(v, dict):
            return v
    return None


class AgentScreen(DetailScreen):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.proc: tuple[int, float, dict] | None = None

    def title_text(self) -> str:
        return f"agent {self.key}"

    def events_filter(self) -> LogFilter:
        return LogFilter(text=f'"{self.key}"')

    def load_events(self) -> None:
        source = getattr(self.app, "log_source", None)
        if source is None:
            return
        flt = self.events_filter()

        def work() -> None:
            evs = recent_matching(source, flt, 30)
            proc = source.process(self.key)
            self.app.call_from_thread(self._loaded, evs, proc)

        self.run_worker(work, thread=True, exit_on_error=False)

    def _loaded(self, evs: list, proc: tuple[int, float, dict] | None) -> None:
        self.proc = proc
        self._events_loaded(evs)

    def process_block(self, c: Any) -> Table:
        eng = self.engine
        t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        t.add_column(style=f"bold {c('secondary')}", no_wrap=True)
        t.add_column(overflow="fold")
        rt = runtime_facts(eng.state.settings)
        if rt is None:
            t.add_row("process", "simulated runtime: no OS process; usage is modelled, no limit is enforced")
            return t
        t.add_row("runtime", str(rt.get("runtime", "")))
        on_ray = (eng.state.settings.get("ray_agent_nodes") or {}).get(self.key)
        if rt.get("cluster"):  # the runtime declared that its agents run on a cluster's nodes
            if on_ray:  # an actor: its node and worker pid, the limits probed on that node
                node = on_ray.get("node")
                t.add_row("node", f"{node}  (actor worker pid {on_ray.get('pid')})")
                rt = {**rt, **((eng.state.settings.get("ray_node_limits") or {}).get(node) or {})}
            else:
                t.add_row("node", "— (its actor has not answered yet)")
        elif self.proc is not None:
            pid, created, info = self.proc
            t.add_row("host pid", f"{pid} (started {fmt_clock(created)}; identified by pid and create time)")
            if info.get("task_pgid"):
                t.add_row("task group", f"pgid {info['task_pgid']}")
        else:
            t.add_row("host pid", "— (no live process recorded for this agent)")
        t.add_row(
            "memory limit",
            f"{rt.get('memory_limit') or 'none'}" + (f"  (cgroup {rt['cgroup']})" if rt.get("cgroup") else ""),
        )
        t.add_row("cpu limit", str(rt.get("cpu_limit") or "none"))
        a = eng.state.agents.get(self.key)
        task = eng.state.tasks.get(a.current_task) if a is not None and a.current_task else None
        if task is not None:
            t.add_row(
                "task asks",
                f"{task.cpu:g} cpu, {task.memory_gb:g} GB" + (" (0: no memory limit)" if not task.memory_gb else ""),
            )
        return t

    def body(self) -> RenderableType:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        eng = self.engine
        a = eng.state.agents.get(self.key)
        if a is None:
            return Text(f"no agent {self.key!r}", style=c("error"))
        glyph, gc = AGENT_GLYPH[a.status]
        head = Text()
        head.append(f"{glyph} {a.status.value}", style=f"bold {c(gc)}")
        head.append(f"  pool {a.pool}  specializations {', '.join(a.specializations)}")
        head.append(f"  tasks done {a.tasks_done}  failures {a.failures}")
        if a.last_heartbeat is not None:
            head.append(f"  last heartbeat {fmt_clock(a.last_heartbeat)}", style=c("foreground-muted"))
        if a.current_task:
            head.append(f"  now: {a.current_task}", style=c("primary"))
        width = max(min((self.size.width or 80) - 24, 120), 20)
        cpu = eng.telemetry.get("cpu_pct", a.id).values()
        mem = eng.telemetry.get("memory_mb", a.id).values()
        graph = Text()
        graph.append("CPU %     ", style=f"bold {c('secondary')}")
        graph.append(sparkline(cpu, width, 0, 100), style=c("success"))
        graph.append(f" {cpu[-1] if cpu else 0:5.1f}\n")
        top = max(mem or [1.0]) or 1.0
        graph.append("memory MB ", style=f"bold {c('secondary')}")
        graph.append(sparkline(mem, width, 0, top), style=c("accent"))
        graph.append(f" {mem[-1] if mem else 0:5.0f}")
        parts: list[RenderableType] = [head, Text(""), self.process_block(c), Text(""), graph, Text("")]
        mine = [
            t
            for t in eng.state.tasks.values()
            if t.agent == a.id or any(ev.data.get("task") == t.id for ev in self.events)
        ]
        mine.sort(key=lambda t: t.started_at or 0.0, reverse=True)
        task = eng.state.tasks.get(a.current_task) if a.current_task else (mine[0] if mine else None)
        if task is not None:
            out = task.context.last_output[-OUTPUT_LINES:]
            live = " (following)" if task.id == a.current_task else f" ({task.status.value})"
            parts.append(Text(f"Last output of {task.id}{live}", style=f"bold {c('secondary')}"))
            parts += [Text(f"  {ln}", style=c("foreground-muted"), overflow="fold") for ln in out] or [
                Text("  (nothing printed yet)", style=c("foreground-muted"))
            ]
            parts.append(Text(""))
        hist = Table(
            title="Task history", title_justify="left", expand=True, box=None, header_style=f"bold {c('secondary')}"
        )
        for col in ("task", "state", "started", "finished", "tries"):
            hist.add_column(col, no_wrap=True)
        for t in mine[:20]:
            hist.add_row(
                t.id,
                Text(t.status.value, style=c(TASK_STATUS_COLOR[t.status])),
                fmt_clock(t.started_at) if t.started_at is not None else "—",
                fmt_clock(t.finished_at) if t.finished_at is not None else "—",
                str(t.attempts),
            )
        parts += [hist, Text(""), self.events_block()]
        return Group(*parts)

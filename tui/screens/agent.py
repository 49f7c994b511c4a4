"""An agent: status, its process (pid, limits and the mechanism enforcing them), the last
output of its task following live, task history and usage graphs.

The process facts come from where the runtime put them: the local runtime records each
agent host's pid and create time in the database's ``processes`` table and the limit
mechanisms in force in the ``local_runtime`` (or ``ray_runtime``) setting; on the
simulated runtime there is no process and the screen says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType

from core import timefmt
from core.events import Event

from ..figures import sparkline
from ..log_source import LogFilter, recent_matching
from ..style import AGENT_GLYPH, TASK_STATUS_COLOR, color
from ..widgets.agent_pools import LIVE, UNMEASURED
from .agent_task import DETACH_KEY, TaskView, input_command, key_bytes, task_blocks
from .detail import DetailScreen
from .modals import AskScreen

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
    BINDINGS: ClassVar[list[BindingType]] = [
        *DetailScreen.BINDINGS,
        Binding("s", "send_input", "Send input"),
        Binding("enter", "attach_terminal", "Attach terminal"),
    ]

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.proc: tuple[int, float, dict] | None = None
        self.view = TaskView()
        self._unsubscribe: Callable[[], None] | None = None

    def on_mount(self) -> None:
        # DetailScreen.on_mount runs too (Textual calls each class's handler).
        link = self.app.link
        self._unsubscribe = link.subscribe(self._heard) if link is not None else None
        self.set_interval(self.REFRESH_S, self.fetch_task)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _heard(self, ev: Event) -> None:
        task = ev.data.get("task")
        if isinstance(task, str):
            self.view.heard(task)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Input and attach keys show only for a task that reads input / has a terminal."""
        if action in ("send_input", "attach_terminal"):
            t = self.current_task()
            return t is not None and (t.tty if action == "attach_terminal" else t.interactive)
        return True

    def current_task(self) -> Any:
        link = self.app.link
        if link is None:  # closing: the host is gone
            return None
        a = link.state.agents.get(self.key)
        return link.state.tasks.get(a.current_task) if a is not None and a.current_task else None

    def fetch_task(self) -> None:
        self.refresh_bindings()
        t = self.current_task()
        link = self.app.link
        if t is None or link is None or not self.view.due(t, link.clock.now()):
            return

        async def work() -> None:
            if await self.view.fetch(link, t, link.clock.now()):
                self.redraw()

        self.run_worker(work(), group="task-view", exclusive=True, exit_on_error=False)

    def _send(self, text: str) -> None:
        link = self.app.link
        if link is None:
            return

        async def work() -> None:
            res = await link.send(text)
            if res.get("status") != "success":
                err = res.get("error") or {}
                self.notify(str(err.get("message") or "not written"), severity="warning", timeout=6)
                self.view.attached = False
            self.view.heard()  # what was typed is echoed: fetch it
            self.fetch_task()

        self.run_worker(work(), group="task-input", exit_on_error=False)

    def action_send_input(self) -> None:
        t = self.current_task()
        if t is None or not t.interactive:
            self.notify("this agent's task reads no input (interactive = true or tty = true)", severity="warning")
            return

        def sent(text: str | None) -> None:
            if text is not None:
                self._send(input_command(t.id, text))

        self.app.push_screen(AskScreen(f"A line for {t.id}'s stdin ({t.waiting_input or 'running'})"), sent)

    def action_attach_terminal(self) -> None:
        t = self.current_task()
        if t is None or not t.tty:
            self.notify("this agent's task has no terminal (tty = true in its workflow file)", severity="warning")
            return
        self.view.attached = True
        self.notify("attached: keys go to the task; ctrl+] detaches", timeout=4)
        self.redraw()

    def on_key(self, event: events.Key) -> None:
        if not self.view.attached:
            if event.key == "enter" and self.check_action("attach_terminal", ()):
                event.stop()
                event.prevent_default()
                self.action_attach_terminal()
            return
        event.stop()
        event.prevent_default()
        t = self.current_task()
        if event.key == DETACH_KEY or t is None:
            self.view.attached = False
            self.notify("detached", timeout=2)
            self.redraw()
            return
        typed = key_bytes(event.key, event.character)
        if typed is not None:
            self._send(input_command(t.id, typed, newline=False))

    def title_text(self) -> str:
        return f"agent {self.key}"

    def events_filter(self) -> LogFilter:
        return LogFilter(text=f'"{self.key}"')

    def load_events(self) -> None:
        source = self.app.log_source
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
            t.add_row("host pid", f"{pid} (started {timefmt.clock(created)}; identified by pid and create time)")
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
            head.append(f"  last heartbeat {timefmt.clock(a.last_heartbeat)}", style=c("foreground-muted"))
        if a.current_task:
            head.append(f"  now: {a.current_task}", style=c("primary"))
        width = max(min((self.size.width or 80) - 24, 120), 20)
        cpu = eng.telemetry.get("cpu_pct", a.id).values()
        mem = eng.telemetry.get("memory_mb", a.id).values()
        graph = Text()
        graph.append("CPU %     ", style=f"bold {c('secondary')}")
        graph.append(sparkline(cpu, width, 0, 100), style=c("success"))
        # A cut-off or failed agent is measured by nothing now: its last sample is not a figure of now.
        measured = a.status in LIVE
        graph.append(f" {cpu[-1]:5.1f}\n" if cpu and measured else f" {UNMEASURED:>5}\n")
        top = max(mem or [1.0]) or 1.0
        graph.append("memory MB ", style=f"bold {c('secondary')}")
        graph.append(sparkline(mem, width, 0, top), style=c("accent"))
        graph.append(f" {mem[-1]:5.0f}" if mem and measured else f" {UNMEASURED:>5}")
        if not measured:
            graph.append(f"\n(not measured while {a.status.value}; the graphs end at its last sample)")
        parts: list[RenderableType] = [head, Text(""), self.process_block(c), Text(""), graph, Text("")]
        mine = [
            t
            for t in eng.state.tasks.values()
            if t.agent == a.id or any(ev.data.get("task") == t.id for ev in self.events)
        ]
        mine.sort(key=lambda t: t.started_at or 0.0, reverse=True)
        task = eng.state.tasks.get(a.current_task) if a.current_task else (mine[0] if mine else None)
        if task is not None:
            parts += task_blocks(task, self.view, c)
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
                timefmt.clock(t.started_at) if t.started_at is not None else "—",
                timefmt.clock(t.finished_at) if t.finished_at is not None else "—",
                str(t.attempts),
            )
        parts += [hist, Text(""), self.events_block()]
        return Group(*parts)

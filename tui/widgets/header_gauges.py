"""The header bar: CPU, memory and agent-slot gauges with sparklines, the clock, incidents."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Self

from rich.text import Text
from textual import getters
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from core import timefmt
from core.incidents.approval import awaits_approval, holding_plans
from core.usage.models import BudgetState, Spend

from ..console_host import ConsoleApp
from ..figures import budget_level, fmt_cost, fmt_tokens, gauge, sparkline
from ..operator import running_drill
from ..strips import text_strip
from ..style import color

if TYPE_CHECKING:
    from core.host.link import Link

    from .event_log import EventLog

OPEN_INCIDENT = frozenset({"open", "recovering"})
"""Incident statuses of a fault being handled (the others are resolved or failed; a failed
one still waits for a replan or a note, counted apart)."""


def clock_label(link: Link | None) -> str:
    """How the simulated clock runs: its speed, paused, stopped, or held by plans awaiting approval."""
    if link is None:
        return ""
    if link.gone or (link.kind == "attached" and link.host_pid is None) or (link.kind == "embedded" and link.trouble):
        return "(stopped)"
    if not link.clock_running:
        return "(paused)"
    held = holding_plans(link.state.plans, link.config.approval)
    return f"×{link.speed:g} (held: {', '.join(held)} awaits approval)" if held else f"×{link.speed:g}"


def open_incidents(engine: Link) -> tuple[int, bool]:
    """(number of open incidents, whether one of them is critical)."""
    n, critical = 0, False
    for inc in engine.state.incidents.values():
        if inc.status not in OPEN_INCIDENT:
            continue
        n += 1
        if inc.severity == "critical":
            critical = True
    return n, critical


def tightest_budget(engine: Link) -> tuple[BudgetState, Spend, float] | None:
    """The budget nearest to (or furthest past) its limit, with its spend and share."""
    led = engine.state.usage
    best = None
    for st in led.budgets.values():
        spent = led.spend_of(st.scope, st.name)
        share = st.budget.share(spent)
        if best is None or share > best[2]:
            best = (st, spent, share)
    return best


class Part(NamedTuple):
    """One part of the status line and how much it matters (a narrow terminal drops the
    least first); ``glued``: written right after the part before it, with a space."""

    weight: int
    text: Text
    glued: bool = False
    short: Text | None = None
    """A shorter way to say it, used before any part is left out."""


def fit_parts(parts: list[Part], width: int, sep: Text) -> Text:
    """``parts`` joined by ``sep`` in ``width`` cells: while they do not fit, parts with a
    shorter form take it, then the part that matters least (the last of those) is left
    out, so every part shown is whole."""
    kept = list(parts)

    def joined() -> Text:
        out = Text(no_wrap=True, overflow="crop")
        for i, part in enumerate(kept):
            if i:
                out.append_text(Text(" ") if part.glued else sep)
            out.append_text(part.text)
        return out

    text = joined()
    if text.cell_len > width:
        kept = [p._replace(text=p.short, short=None) if p.short is not None else p for p in kept]
        text = joined()
    while text.cell_len > width and len(kept) > 1:
        least = min(p.weight for p in kept)
        del kept[max(i for i, p in enumerate(kept) if p.weight == least)]
        text = joined()
    return text


class HeaderGauges(Widget):
    """Two lines in the manner of btop's top bar; redrawn on the app's refresh tick."""

    DEFAULT_CSS = "HeaderGauges { height: 2; text-wrap: nowrap; text-overflow: clip; }"
    app = getters.app(ConsoleApp)

    _drawn: tuple[tuple[int, str], list[Strip]] | None = None
    """((width, theme), the two lines drawn) since the last refresh."""

    def __init__(self, log: EventLog, *, readonly: bool = False, id: str | None = None) -> None:
        """``log``: the event log pane whose head the status line shows as its seq;
        ``readonly``: the console only reads the database (the line says READ-ONLY)."""
        super().__init__(id=id)
        self.event_log = log
        self.readonly = readonly
        self.status_text = "opening…"
        self._drawn_seq = -1

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False) -> Self:
        if repaint:
            self._drawn = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def render_line(self, y: int) -> Strip:
        """The lines of :meth:`render` drawn by rich (tui.strips), once per refresh: the same
        cells as Textual's path at a sixth of its cost; the header changes on every tick."""
        width = self.size.width
        key = (width, self.app.theme)
        base = self.visual_style.rich_style
        if self._drawn is None or self._drawn[0] != key:
            lines = self.render().split("\n", allow_blank=True)
            self._drawn = (
                key,
                [text_strip(self.app.console, line, base, width, i) for i, line in enumerate(lines)],
            )
        strips = self._drawn[1]
        return strips[y] if y < len(strips) else Strip.blank(width, base)

    def follow_log(self) -> None:
        """Redraw when the log's head moved: the seq shown is the log's (the app's refresh
        tick calls this the tick after the log's)."""
        if self.event_log.head != self._drawn_seq:
            self.refresh()

    def _usage(self, engine: Link, c: Callable[[str], str]) -> Text:
        """Reported spend and a gauge of the budget nearest its limit; held pools."""
        led = engine.state.usage
        total = led.total()
        line = Text()
        line.append(f"{fmt_tokens(total.tokens)} tok {fmt_cost(total.cost_usd)}", style="bold")
        tight = tightest_budget(engine)
        if tight is not None:
            st, spent, share = tight
            lvl = budget_level(st, spent)
            line.append(f" budget {st.name} ", style=c("secondary"))
            warn = 100 * st.warn_share
            line.append_text(
                gauge(100 * share, 8, c("success"), c("foreground-muted"), warn, c("warning"), 100.0, c("error"))
            )
            line.append(f"{100 * share:4.0f}%", style=f"bold {c(lvl)}")
        if led.holds:
            line.append(f"  {len(led.holds)} pool(s) rate-limited", style=f"bold {c('warning')}")
        return line

    def _status_parts(self, engine: Link, c: Callable[[str], str]) -> list[Part]:
        """The status line's parts, each with how much it matters (a narrow terminal drops the
        least first): the clock, open incidents, plans awaiting a decision and a running drill
        stay; the log's seq, the drill's fault time and the workflow counts go first."""
        s = engine.state
        parts: list[Part] = []
        clock = Text(" ⏱ ", style=c("accent"))
        clock.append(timefmt.clock(engine.clock.now()), style="bold")
        speed = clock_label(engine) if engine.clock.virtual else "wall clock"
        if speed:
            clock.append(f" {speed}", style=c("foreground-muted"))
        parts.append(Part(9, clock))
        counts: dict[str, int] = {}
        for wf in s.workflows.values():
            counts[wf.status.value] = counts.get(wf.status.value, 0) + 1
        for done in s.finished.values():
            counts[done.status.value] = counts.get(done.status.value, 0) + 1
        wfs = Text("wf ")
        wfs.append(f"{counts.get('running', 0)}", style=f"bold {c('success')}")
        wfs.append(" run ")
        wfs.append(f"{counts.get('paused', 0)}", style=f"bold {c('warning')}")
        wfs.append(" paused ")
        wfs.append(f"{counts.get('completed', 0)}/{len(s.workflows) + len(s.finished)}", style=f"bold {c('primary')}")
        wfs.append(" done")
        parts.append(Part(4, wfs))
        n, critical = open_incidents(engine)
        style = (
            f"bold {c('background')} on {c('error')}" if critical else (f"bold {c('warning')}" if n else c("success"))
        )
        parts.append(Part(8, Text(f" incidents {n} ", style=style)))
        failed = sum(1 for inc in s.incidents.values() if inc.status == "failed")
        if failed:  # its plan failed: it waits for a replan or a note (/incident resolve)
            parts.append(Part(8, Text(f"{failed} failed", style=f"bold {c('error')}"), glued=True))
        pending = sum(1 for p in s.plans.values() if awaits_approval(p))
        if pending:
            warn = f"bold {c('warning')}"
            full, short = (
                Text(f"{pending} plan(s) await approval", style=warn),
                Text(f"{pending} to approve", style=warn),
            )
            parts.append(Part(8, full, glued=True, short=short))
        if not s.usage.empty():
            parts.append(Part(5, self._usage(engine, c)))
        drill = running_drill(s.settings)
        if drill is not None:
            parts.append(Part(7, Text(f"drill {drill.get('name')}", style=f"bold {c('accent')}")))
            at = drill.get("injected_at") if drill.get("status") == "injected" else drill.get("inject_at")
            verb = "injected" if drill.get("status") == "injected" else "fault at"
            if isinstance(at, (int, float)):
                parts.append(Part(3, Text(f"{verb} {timefmt.clock(at)}", style=c("accent")), glued=True))
        cpus = engine.telemetry.get("ray_cpus", "cluster").last()
        if cpus:  # on a Ray cluster: its CPUs and memory as Ray accounts them
            tel = engine.telemetry
            ray = Text("ray ", style=f"bold {c('secondary')}")
            ray.append(
                f"{tel.get('ray_cpus_free', 'cluster').last():g}/{cpus:g} CPU free "
                f"{tel.get('ray_memory_gb_free', 'cluster').last():.1f}/{tel.get('ray_memory_gb', 'cluster').last():.1f} GB"
            )
            parts.append(Part(5, ray))
        self._drawn_seq = self.event_log.head
        parts.append(Part(2, Text(f"seq {self._drawn_seq:,}", style=c("foreground-muted"))))
        if self.readonly:
            parts.append(Part(9, Text("READ-ONLY", style=f"bold {c('warning')}")))
        return parts

    def render(self) -> Text:
        app = self.app
        engine = app.link
        w = self.size.width or 80
        c = lambda n: color(app, n)  # noqa: E731
        line1 = Text(no_wrap=True, overflow="crop")
        line1.append(" opsdeck ", style=f"bold {c('background')} on {c('primary')}")
        line1.append(" ")
        if engine is not None:
            where = engine.describe()
            line1.append(
                f" {where} ",
                style=f"bold {c('background')} on {c('error')}"
                if engine.gone or engine.trouble
                else c("foreground-muted"),
            )
        if engine is None:
            line1.append(f"  {self.status_text}", style=c("foreground-muted"))
            return line1
        tel = engine.telemetry
        th = engine.config.thresholds
        util = engine.utilisation()
        st = engine.state
        # An empty simulated world has nothing to measure: show a dash, not a modelled baseline.
        empty = (
            engine.clock.virtual
            and not st.workflows
            and not any(a.status.value != "retired" for a in st.agents.values())
        )
        gauges = [
            ("CPU", util["cpu"], tel.get("cpu_pct").values(), th.cpu_warning, 95.0),
            ("MEM", util["memory"], tel.get("memory_pct").values(), th.memory_warning, 95.0),
            # agents in use (core.projection.agent_in_use: holding a task, paused too) of the capacity's slots
            ("AGT", util["agents"], tel.get("agents_pct").values(), th.agents_critical - 10, th.agents_critical),
        ]
        avail = max(w - 10 - len(where) - 2, 30)
        per = avail // 3
        spark_w = max(min(per - 20, 16), 0)
        bar_w = max(per - 11 - spark_w - (1 if spark_w else 0), 4)
        # A gone host measures nothing: its last samples are not figures of now.
        unmeasured = empty or engine.gone is not None
        for name, pct, hist, warn_at, crit_at in gauges:
            line1.append(f" {name}", style=f"bold {c('secondary')}")
            if unmeasured:
                line1.append(f" {'—':>{bar_w + 4}}", style=c("foreground-muted"))
                continue
            line1.append_text(
                gauge(pct, bar_w, c("success"), c("foreground-muted"), warn_at, c("warning"), crit_at, c("error"))
            )
            line1.append(f"{pct:5.1f}%", style="bold")
            if spark_w:
                line1.append(" " + sparkline(hist, spark_w), style=c("secondary"))
        if empty:
            line1.append(
                "   empty world: `opsdeck demo` opens a simulated fleet, `opsdeck run FILE.toml` real agents",
                style=c("foreground-muted"),
            )
        line2 = fit_parts(self._status_parts(engine, c), w, Text("  │ ", style=c("foreground-muted")))
        out = Text("\n").join([line1, line2])
        out.no_wrap, out.overflow = True, "crop"  # a narrow terminal crops the header, never wraps it over line 2
        return out

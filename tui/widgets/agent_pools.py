"""Agent pools: each pool and its agents with status glyph, current task, CPU and memory.

A header line names the columns; a task id is cut in the middle so its workflow and
task name both stay readable; a CPU sparkline per agent shows its recent history
where the pane is wide enough; ``s`` sorts the agents inside each pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from core import timefmt
from core.models import AgentStatus
from core.projection import agent_in_use
from core.usage.models import Spend

from ..figures import SPEND_W, budget_level, fmt_spend, sparkline
from ..style import AGENT_GLYPH, color
from .live_list import LiveList, Row, distinct_names, distinct_suffixes, middle_ellipsis

if TYPE_CHECKING:
    from core.host.link import Link

LIVE = (AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.IDLE)
"""The agents whose CPU and memory are measured now."""
UNMEASURED = "—"
SPARK_W = 8


def fit_tasks(tasks: list[str], width: int) -> dict[str, str]:
    """Task ids (``workflow/task``) fitted to ``width``: the task's own name stays whole and
    the workflow part is cut in the middle, as distinct as the width allows. Too narrow for
    any workflow part, a task shows its own name when no other task shares it, else the id
    cut to its distinguishing end (``w…test_1`` and ``i…test_1``, not ``work…st_1`` twice)."""
    out = distinct_names(tasks, width)
    own = {t: t.partition("/")[2] or t for t in tasks}
    shared = {n for n in own.values() if list(own.values()).count(n) > 1}
    cramped = [t for t in tasks if len(t) > width and width - len(own[t]) - 1 < 5]
    for t in cramped:
        if own[t] not in shared and len(own[t]) <= width:
            out[t] = own[t]
    ends = distinct_suffixes([t for t in cramped if out[t] != own[t]], width)
    out.update(ends)
    for t in tasks:
        if len(t) <= width or "/" not in t:
            continue
        wf, _, name = t.partition("/")
        budget = width - len(name) - 1
        if budget >= 5:
            wfs = distinct_names(sorted({x.partition("/")[0] for x in tasks}), budget)
            out[t] = f"{wfs[wf]}/{name}"
    return out


def idle_words(replaced_by: str | None, held_until: float | None, width: int) -> str:
    """What an agent without a task shows in a task column ``width`` wide: the agent that
    replaced it, else the time it is kept out of dispatch to, else a dash. Shorter words
    where the long ones do not fit: the id or the time is what must stay."""
    said: tuple[str, ...]
    if replaced_by is not None:
        said = (f"replaced by {replaced_by}", f"→ {replaced_by}", replaced_by)
    elif held_until is not None:
        t = timefmt.clock(held_until)
        said = (f"no dispatch until {t}", f"held until {t}", f"held to {t}", t)
    else:
        return "—"
    return next((w for w in said if len(w) <= width), said[-1][:width])


def replacements(settings: dict[str, Any]) -> dict[str, str]:
    """Failed agents a recovery replaced (failed -> replacement), from the log's
    ``recovery.replacements`` setting: they no longer count as down."""
    rec = settings.get("recovery.replacements")
    return {str(k): str(v) for k, v in rec.items() if v} if isinstance(rec, dict) else {}


def agent_nodes(settings: dict, agents: list) -> str:
    """Where a pool's agents run on a Ray cluster (``host (ip)`` ×count), from the log's
    ``ray_agent_nodes`` setting; empty on the other runtimes."""
    where = settings.get("ray_agent_nodes") or {}
    counts: dict[str, int] = {}
    for a in agents:
        node = (where.get(a.id) or {}).get("node")
        if node:
            counts[node] = counts.get(node, 0) + 1
    return ", ".join(f"{n} ×{k}" for n, k in sorted(counts.items()))


class AgentPools(LiveList):
    NAME = "Agent pools"
    SORTS = ("name", "cpu", "memory", "state")

    _spend = False
    """A tokens/cost column (once tasks have reported usage)."""

    def _widths(self, w: int, id_w: int) -> tuple[bool, bool, int, int]:
        """(state column, memory column, task width, sparkline width) for ``w`` cells."""
        state = w >= 56
        mem = w >= 40
        fixed = 3 + id_w + (8 if state else 1) + 5 + (7 if mem else 0) + (SPEND_W + 1 if self._spend else 0)
        spark = SPARK_W + 1 if w - fixed >= 24 + SPARK_W + 1 else 0
        return state, mem, max(w - fixed - spark, 4), spark

    def header(self, width: int) -> Text:
        c = lambda n: color(self.app, n)  # noqa: E731
        state, mem, task_w, spark = self._widths(width, self._id_w)
        t = Text(no_wrap=True, overflow="ellipsis", style=f"bold {c('secondary')}")
        t.append(f"   {'agent':<{self._id_w}}")
        t.append(" state  " if state else " ")
        t.append(f"{'task':<{task_w}}")
        t.append(" cpu%")
        if mem:
            t.append("  memMB")
        if self._spend:
            t.append(f" {'tokens    cost':>{SPEND_W}}")
        if spark:
            t.append(f" {'cpu hist':<{SPARK_W}}")
        return t

    _id_w = 10

    def rows(self, engine: Link) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        w = self.row_width
        out: list[Row] = []
        usage = engine.telemetry.agent_usage
        live = [a for a in s.agents.values() if a.status is not AgentStatus.RETIRED]
        self._id_w = max([len(a.id) for a in live] + [9]) + 1
        self._spend = w >= 60 and not s.usage.empty()
        state, mem_col, task_w, spark = self._widths(w, self._id_w)
        tasks = fit_tasks(sorted({a.current_task for a in live if a.current_task}), task_w)

        def use(a) -> tuple[float, float]:
            return usage.get(a.id, (0.0, 0.0)) if a.status in LIVE else (0.0, 0.0)

        order = {
            "name": lambda a: (a.id,),
            "cpu": lambda a: (-use(a)[0], a.id),
            "memory": lambda a: (-use(a)[1], a.id),
            "state": lambda a: (a.status.value, a.id),
        }[self.sort_key]
        # in use: holding a task (paused ones too), the AGT gauge's count (core.projection.agent_in_use)
        used_all = sum(1 for a in live if agent_in_use(a))
        replaced = replacements(s.settings)
        now = engine.clock.now()
        self.note = f"{used_all}/{len(live)} in use"
        for pool in sorted(s.pools.values(), key=lambda p: p.name):
            agents = sorted((a for a in live if a.pool == pool.name), key=order)
            used = [a for a in agents if agent_in_use(a)]
            paused = sum(1 for a in used if a.status is AgentStatus.PAUSED)
            down = [a for a in agents if a.status in (AgentStatus.FAILED, AgentStatus.UNREACHABLE)]
            gone = sum(1 for a in down if a.id in replaced)
            bad = len(down) - gone
            head = Text(no_wrap=True, overflow="ellipsis")
            head.append(f"▾ {pool.name}", style=f"bold {c('secondary')}")
            head.append(
                f"  {len(used)}/{len(agents)} in use" + (f" ({paused} paused)" if paused else ""),
                style=c("foreground-muted"),
            )
            if bad:
                head.append(f"  {bad} down", style=f"bold {c('error')}")
            if gone:
                head.append(f"  {gone} replaced", style=c("foreground-muted"))
            head.append(f"  max {pool.max_size}", style=c("foreground-muted"))
            if self._spend:
                spent = s.usage.spend_of("pool", pool.name)
                lvl = budget_level(s.usage.budget_of("pool", pool.name), spent)
                head.append(f"  {fmt_spend(spent).strip()}", style=c(lvl))
            hold = s.usage.holds.get(pool.name)
            if hold is not None:
                until = (
                    "reset passed" if engine.clock.now() >= hold.reset_at else f"until {timefmt.clock(hold.reset_at)}"
                )
                head.append(f"  RATE-LIMITED {until}", style=f"bold {c('warning')}")
            nodes = agent_nodes(s.settings, agents)
            if nodes:
                head.append(f"  on {nodes}", style=c("foreground-muted"))
            out.append((f"pool:{pool.name}", head, True))
            for a in agents:
                glyph, gcolor = AGENT_GLYPH[a.status]
                t = Text(no_wrap=True, overflow="ellipsis")
                t.append(f" {glyph} ", style=f"bold {c(gcolor)}")
                t.append(f"{a.id:<{self._id_w}}", style="bold" if a.status is AgentStatus.BUSY else "")
                if state:
                    t.append(f" {a.status.value[:6]:<6} ", style=c(gcolor))
                else:
                    t.append(" ")
                held = a.backoff_until is not None and a.backoff_until > now and not a.current_task
                task = (
                    tasks.get(a.current_task, middle_ellipsis(a.current_task, task_w, task_w // 2))
                    if a.current_task
                    else idle_words(
                        replaced[a.id] if a.id in replaced and a.status is not AgentStatus.BUSY else None,
                        a.backoff_until if held else None,
                        task_w,
                    )
                )
                style = c("foreground") if a.current_task else c("warning") if held else c("foreground-muted")
                t.append(f"{task:<{task_w}}", style=style)
                if a.status in LIVE:
                    cpu, mem = use(a)
                    t.append(f" {cpu:4.0f}", style=c("warning") if cpu >= 80 else "")
                    if mem_col:
                        t.append(f" {mem:6.0f}", style=c("foreground-muted"))
                else:  # nothing measures a cut-off or failed agent now: no figure, not a 0
                    t.append(f" {UNMEASURED:>4}", style=c("foreground-muted"))
                    if mem_col:
                        t.append(f" {UNMEASURED:>6}", style=c("foreground-muted"))
                if self._spend:
                    t.append(" " + fmt_spend(s.usage.agents.get(a.id) or Spend()), style=c("foreground-muted"))
                if spark:
                    hist = engine.telemetry.get("cpu_pct", a.id).values()
                    t.append(" " + sparkline(hist[-SPARK_W * 4 :], SPARK_W, 0, 100), style=c("secondary"))
                out.append((f"agent:{a.id}", t, False))
        if not out:
            out.append(
                (
                    "empty",
                    Text("no agents — try `opsdeck demo` or `opsdeck run FILE.toml`", style=c("foreground-muted")),
                    True,
                )
            )
        return out

    def refresh_from(self, engine: Link) -> None:
        self.sync(self.rows(engine))

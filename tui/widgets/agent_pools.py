"""Agent pools: each pool and its agents with status glyph, current task, CPU and memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from core.models import AgentStatus

from ..style import AGENT_GLYPH, color
from .live_list import LiveList, Row

if TYPE_CHECKING:
    from core.engine import Engine


class AgentPools(LiveList):
    BORDER_TITLE = "Agent pools"

    def rows(self, engine: Engine) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        w = self.row_width
        out: list[Row] = []
        usage = engine.telemetry.agent_usage
        narrow = w < 40
        task_w = max(w - (28 if narrow else 35), 4)
        for pool in sorted(s.pools.values(), key=lambda p: p.name):
            agents = sorted((a for a in s.agents.values() if a.pool == pool.name and a.status is not AgentStatus.RETIRED), key=lambda a: a.id)
            busy = sum(1 for a in agents if a.status is AgentStatus.BUSY)
            bad = sum(1 for a in agents if a.status in (AgentStatus.FAILED, AgentStatus.UNREACHABLE))
            head = Text(no_wrap=True, overflow="ellipsis")
            head.append(f"▾ {pool.name}", style=f"bold {c('secondary')}")
            head.append(f"  {busy}/{len(agents)} busy", style=c("foreground-muted"))
            if bad:
                head.append(f"  {bad} down", style=f"bold {c('error')}")
            head.append(f"  max {pool.max_size}", style=c("foreground-muted"))
            out.append((f"pool:{pool.name}", head, True))
            for a in agents:
                glyph, gcolor = AGENT_GLYPH[a.status]
                t = Text(no_wrap=True, overflow="ellipsis")
                t.append(f" {glyph} ", style=f"bold {c(gcolor)}")
                t.append(f"{a.id:<10}", style="bold" if a.status is AgentStatus.BUSY else "")
                if not narrow:
                    st = a.status.value[:6]
                    t.append(f" {st:<6} ", style=c(gcolor))
                else:
                    t.append(" ")
                task = a.current_task or "—"
                if len(task) > task_w:
                    task = "…" + task[-(task_w - 1):]
                t.append(f"{task:<{task_w}}", style=c("foreground") if a.current_task else c("foreground-muted"))
                cpu, mem = usage.get(a.id, (0.0, 0.0)) if a.status in (AgentStatus.BUSY, AgentStatus.PAUSED, AgentStatus.IDLE) else (0.0, 0.0)
                t.append(f" {cpu:4.0f}%", style=c("warning") if cpu >= 80 else "")
                if not narrow:
                    t.append(f" {mem:4.0f}M", style=c("foreground-muted"))
                out.append((f"agent:{a.id}", t, False))
        if not out:
            out.append(("empty", Text("no pools yet", style=c("foreground-muted")), True))
        return out

    def refresh_from(self, engine: Engine) -> None:
        self.sync(self.rows(engine))

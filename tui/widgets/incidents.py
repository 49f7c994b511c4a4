"""Incidents and pending plans: the approval queue, each plan's steps and their progress.

``engine.state.incidents``, ``plans`` and ``resumptions`` are typed models folded by the
projection; this pane reads their attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from core import timefmt
from core.incident_models import TERMINAL_PLAN, Incident, Plan, PlanState
from core.incidents.approval import awaits_approval

from ..style import color
from .header_gauges import OPEN_INCIDENT
from .live_list import LiveList, Row

if TYPE_CHECKING:
    from core.host.link import Link

STEP_GLYPH: dict[str, str] = {
    PlanState.PROPOSED: "·",
    PlanState.APPROVED: "☑",
    PlanState.EXECUTING: "▶",
    PlanState.COMPLETED: "✓",
    PlanState.FAILED: "✖",
    PlanState.REJECTED: "✖",
    PlanState.ROLLED_BACK: "↶",
    PlanState.SKIPPED: "↷",
    "held": "⏸",
}
SEV_COLOR = {"critical": "error", "high": "error", "medium": "warning", "low": "secondary"}
RAN = (PlanState.COMPLETED, PlanState.ROLLED_BACK)
"""A step that ran to its end: completed, or completed and since rolled back with its plan."""


def progress(p: Plan) -> str:
    """How far a plan got: the steps that ran of all, and the steps skipped or failed if any
    ("2/6 steps, step 3 failed" for a plan rolled back after its third step failed; "4/5
    steps, step 2 skipped" for one whose second step's targets had all ended)."""
    ran = sum(1 for st in p.steps if st.state in RAN)
    out = f"{ran}/{len(p.steps)} steps"
    for state in (PlanState.SKIPPED, PlanState.FAILED):
        which = [str(i) for i, st in enumerate(p.steps, 1) if st.state is state]
        out += f", step {', '.join(which)} {state.value}" if which else ""
    return out


def state_words(p: Plan) -> str:
    return p.state.value.replace("_", " ")


def stage(inc: Incident, plans: list[Plan]) -> str:
    """Where an unresolved incident stands and since when: a plan that awaits an approval is
    to approve (its acting steps wait for it); an approved one, or a proposed one of steps
    that all run on their own, is recovering."""
    live = [p for p in plans if p.state not in TERMINAL_PLAN]
    if inc.status == "failed":
        return f"failed at {timefmt.clock(inc.resolved_at if inc.resolved_at is not None else inc.detected_at)}"
    acting = [p for p in live if not awaits_approval(p)]
    if acting:
        p = acting[-1]
        return f"recovering since {timefmt.clock(p.decided_at if p.decided_at is not None else p.created_at)}"
    if live:
        return f"to approve since {timefmt.clock(live[-1].created_at)}"
    return f"open since {timefmt.clock(inc.detected_at)}"


class Incidents(LiveList):
    NAME = "Incidents & plans"

    def rows(self, engine: Link) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        out: list[Row] = []
        plans_by_incident: dict[str, list[str]] = {}
        for pid, p in s.plans.items():
            plans_by_incident.setdefault(p.incident_id, []).append(pid)
        incidents = sorted(s.incidents.items(), key=lambda kv: (kv[1].status not in OPEN_INCIDENT, -kv[1].detected_at))
        shown_plans: set[str] = set()
        for iid, inc in incidents[:12]:
            status = inc.status
            sev = inc.severity
            mine = plans_by_incident.get(iid, [])
            shown_plans.update(mine)
            if status == "resolved":  # a failed incident stays: it still needs a replan or a note
                out.append((f"incident:{iid}", self._folded(iid, inc, [(pid, s.plans[pid]) for pid in mine]), False))
                continue
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append("● " if status in OPEN_INCIDENT else "✖ ", style=c(SEV_COLOR.get(sev, "foreground-muted")))
            t.append(f"{iid} ", style="bold")
            # What to act on first: a narrow pane cuts the (long) type, not the stage.
            t.append(f"{sev} · {stage(inc, [s.plans[pid] for pid in mine])} · ", style=c("foreground-muted"))
            t.append(inc.type, style=c(SEV_COLOR.get(sev, "foreground")))
            out.append((f"incident:{iid}", t, False))
            for pid in mine:
                out.extend(self._plan_rows(pid, s.plans[pid], s.plans[pid].state in TERMINAL_PLAN))
        for pid, p in s.plans.items():
            if pid not in shown_plans and p.state is PlanState.PROPOSED:
                out.extend(self._plan_rows(pid, p, False))
        for rid, r in s.resumptions.items():
            if r.status != "active":
                continue
            st = "held" if r.held else r.status
            t = Text(no_wrap=True, overflow="ellipsis")
            steps = r.steps
            cur = r.next_step
            t.append("⇡ ", style=c("accent"))
            t.append(f"resumption {rid} ", style="bold")
            t.append(
                f"step {cur}/{len(steps)} {st}", style=c("warning") if st in ("held", "waiting") else c("secondary")
            )
            if cur < len(steps):
                t.append(f"  next: {steps[cur].what}", style=c("foreground-muted"))
            out.append((f"resumption:{rid}", t, False))
        if not out:
            out.append(("empty", Text("no incidents — all quiet", style=c("success")), True))
        return out

    def _folded(self, iid: str, inc: Incident, plans: list[tuple[str, Plan]]) -> Text:
        """A closed incident on one line: what it was, how it ended, its last plan."""
        c = lambda n: color(self.app, n)  # noqa: E731
        status = inc.status
        t = Text(no_wrap=True, overflow="ellipsis", style=c("foreground-muted"))
        t.append(f"○ {iid} ")
        validated = inc.outcome.validated
        ended = status + ("" if validated is None else " (validated)" if validated else " (not validated)")
        t.append(ended, style=c("success") if status == "resolved" and validated else c("foreground-muted"))
        if plans:
            pid, p = plans[-1]
            t.append(f" · {pid} {state_words(p)} {progress(p)}")
            if len(plans) > 1:
                t.append(f" (+{len(plans) - 1} earlier)")
        t.append(f" · {inc.type} {inc.severity}")
        if inc.resolved_at is not None:
            t.append(f" · {timefmt.clock(inc.resolved_at)}")
        return t

    def _plan_rows(self, pid: str, p: Plan, dim: bool) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        st = state_words(p)
        steps = p.steps
        t = Text(no_wrap=True, overflow="ellipsis")
        waiting = p.state is PlanState.PROPOSED
        t.append("  ▸ plan ", style=c("foreground-muted"))
        t.append(f"{pid} ", style="bold")
        t.append(f" {st} ", style=f"bold {c('background')} on {c('warning')}" if waiting else c("secondary"))
        t.append(f"  {progress(p)}", style=c("foreground-muted"))
        if p.title:
            t.append(f"  {p.title}", style=c("foreground-muted"))
        rows: list[Row] = [(f"plan:{pid}", t, False)]
        if dim:
            return rows
        for i, step in enumerate(steps, 1):
            g = STEP_GLYPH[step.state]
            colr = (
                "success" if g == "✓" else "error" if g == "✖" else "warning" if g in ("⏸", "▶") else "foreground-muted"
            )
            st_t = Text(no_wrap=True, overflow="ellipsis")
            st_t.append(f"     {g} {i:>2} ", style=c(colr))
            st_t.append(f"[{step.approval}] ", style=c("foreground-muted"))
            st_t.append(step.command.replace("\n", " "), style=c("foreground"))
            rows.append((f"step:{pid}:{i}", st_t, True))
        return rows

    def refresh_from(self, engine: Link) -> None:
        self.sync(self.rows(engine))

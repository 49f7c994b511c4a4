"""Incidents and pending plans: the approval queue, each plan's steps and their progress.

``engine.state.incidents`` and ``engine.state.plans`` are plain dicts written by the
incidents package; this pane reads them defensively (``.get`` with defaults) so it
shows whatever fields a plan carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..meter import fmt_clock
from ..style import color
from .header_gauges import OPEN_INCIDENT
from .live_list import LiveList, Row

if TYPE_CHECKING:
    from core.host.link import Link

WAITING = {"awaiting_approval", "pending_approval", "proposed", "pending", "waiting"}
STEP_GLYPH = {
    "done": "✓",
    "completed": "✓",
    "succeeded": "✓",
    "success": "✓",
    "running": "▶",
    "executing": "▶",
    "in_progress": "▶",
    "failed": "✖",
    "error": "✖",
    "skipped": "↷",
    "rejected": "✖",
    "aborted": "✖",
    "waiting": "⏸",
    "awaiting_approval": "⏸",
    "held": "⏸",
    "approved": "☑",
    "rolled_back": "↶",
}
DONE_STEP = {"done", "completed", "succeeded", "success", "skipped"}
FINISHED = {"completed", "rejected", "failed", "rolled_back"}
SEV_COLOR = {"critical": "error", "high": "error", "medium": "warning", "low": "secondary"}


def plan_status(plan: dict[str, Any]) -> str:
    return str(plan.get("state") or plan.get("status") or "proposed").lower()


def plan_steps(plan: dict[str, Any]) -> list[dict[str, Any]]:
    steps = plan.get("steps") or plan.get("commands") or []
    return [s if isinstance(s, dict) else {"command": str(s)} for s in steps]


def step_text(step: dict[str, Any]) -> str:
    return str(step.get("command") or step.get("text") or step.get("action") or step.get("name") or step)


def step_status(step: dict[str, Any]) -> str:
    return str(step.get("status") or step.get("state") or "pending").lower()


def incident_of(plan: dict[str, Any]) -> str | None:
    v = plan.get("incident") or plan.get("incident_id")
    return str(v) if v else None


class Incidents(LiveList):
    NAME = "Incidents & plans"

    def rows(self, engine: Link) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        s = engine.state
        out: list[Row] = []
        plans_by_incident: dict[str, list[str]] = {}
        for pid, p in s.plans.items():
            plans_by_incident.setdefault(incident_of(p) or "", []).append(pid)
        incidents = sorted(
            s.incidents.items(),
            key=lambda kv: (
                str(kv[1].get("status", "open")).lower() not in OPEN_INCIDENT,
                -float(kv[1].get("detected_at") or kv[1].get("opened_at") or 0),
            ),
        )
        shown_plans: set[str] = set()
        for iid, inc in incidents[:12]:
            status = str(inc.get("status", "open")).lower()
            sev = str(inc.get("severity", "")).lower()
            mine = plans_by_incident.get(iid, [])
            shown_plans.update(mine)
            if status in ("resolved", "closed"):  # a failed incident stays: it still needs a replan or a note
                out.append((f"incident:{iid}", self._folded(iid, inc, [(pid, s.plans[pid]) for pid in mine]), False))
                continue
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append("● " if status in OPEN_INCIDENT else "✖ ", style=c(SEV_COLOR.get(sev, "foreground-muted")))
            t.append(f"{iid} ", style="bold")
            t.append(f"{inc.get('type') or inc.get('kind') or ''} ", style=c(SEV_COLOR.get(sev, "foreground")))
            at = inc.get("detected_at")
            when = f" since {fmt_clock(at)}" if isinstance(at, (int, float)) else ""
            t.append(f"{sev or '?'} · {status}{when}", style=c("foreground-muted"))
            out.append((f"incident:{iid}", t, False))
            for pid in mine:
                out.extend(self._plan_rows(pid, s.plans[pid], plan_status(s.plans[pid]) in FINISHED))
        for pid, p in s.plans.items():
            if pid not in shown_plans and plan_status(p) in WAITING:
                out.extend(self._plan_rows(pid, p, False))
        for rid, r in getattr(s, "resumptions", {}).items():
            st = str(r.get("status", "")).lower()
            if st in ("completed", "done", "aborted", "cancelled"):
                continue
            if r.get("held"):
                st = "held"
            t = Text(no_wrap=True, overflow="ellipsis")
            steps = r.get("steps") or []
            cur = int(r.get("next_step", 0))
            t.append("⇡ ", style=c("accent"))
            t.append(f"resumption {rid} ", style="bold")
            t.append(
                f"step {cur}/{len(steps)} {st}", style=c("warning") if st in ("held", "waiting") else c("secondary")
            )
            if cur < len(steps):
                t.append(f"  next: {steps[cur].get('what', '')}", style=c("foreground-muted"))
            out.append((f"resumption:{rid}", t, False))
        if not out:
            out.append(("empty", Text("no incidents — all quiet", style=c("success")), True))
        return out

    def _folded(self, iid: str, inc: dict[str, Any], plans: list[tuple[str, dict[str, Any]]]) -> Text:
        """A closed incident on one line: what it was, how it ended, its last plan."""
        c = lambda n: color(self.app, n)  # noqa: E731
        status = str(inc.get("status", "")).lower()
        t = Text(no_wrap=True, overflow="ellipsis", style=c("foreground-muted"))
        t.append(f"○ {iid} ")
        outcome = inc.get("outcome") or {}
        validated = outcome.get("validated") if isinstance(outcome, dict) else None
        ended = status + ("" if validated is None else " (validated)" if validated else " (not validated)")
        t.append(ended, style=c("success") if status == "resolved" and validated else c("foreground-muted"))
        if plans:
            pid, p = plans[-1]
            steps = plan_steps(p)
            done = sum(1 for x in steps if step_status(x) in DONE_STEP)
            t.append(f" · {pid} {plan_status(p)} {done}/{len(steps)}")
            if len(plans) > 1:
                t.append(f" (+{len(plans) - 1} earlier)")
        t.append(f" · {inc.get('type') or inc.get('kind') or ''} {inc.get('severity') or '?'}")
        at = inc.get("resolved_at")
        if isinstance(at, (int, float)):
            t.append(f" · {fmt_clock(at)}")
        return t

    def _plan_rows(self, pid: str, p: dict[str, Any], dim: bool) -> list[Row]:
        app = self.app
        c = lambda n: color(app, n)  # noqa: E731
        st = plan_status(p)
        steps = plan_steps(p)
        done = sum(1 for x in steps if step_status(x) in DONE_STEP)
        t = Text(no_wrap=True, overflow="ellipsis")
        waiting = st in WAITING
        t.append("  ▸ plan ", style=c("foreground-muted"))
        t.append(f"{pid} ", style="bold")
        t.append(f" {st} ", style=f"bold {c('background')} on {c('warning')}" if waiting else c("secondary"))
        t.append(f"  {done}/{len(steps)} steps", style=c("foreground-muted"))
        if p.get("title"):
            t.append(f"  {p['title']}", style=c("foreground-muted"))
        rows: list[Row] = [(f"plan:{pid}", t, False)]
        if dim:
            return rows
        for i, step in enumerate(steps, 1):
            ss = step_status(step)
            g = STEP_GLYPH.get(ss, "·")
            colr = (
                "success" if g == "✓" else "error" if g == "✖" else "warning" if g in ("⏸", "▶") else "foreground-muted"
            )
            st_t = Text(no_wrap=True, overflow="ellipsis")
            st_t.append(f"     {g} {i:>2} ", style=c(colr))
            gate = step.get("approval") or step.get("gate") or step.get("kind")
            if gate:
                st_t.append(f"[{gate}] ", style=c("foreground-muted"))
            st_t.append(step_text(step).replace("\n", " "), style=c("foreground"))
            rows.append((f"step:{pid}:{i}", st_t, True))
        return rows

    def refresh_from(self, engine: Link) -> None:
        self.sync(self.rows(engine))

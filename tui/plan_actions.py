"""The operator's decisions on plans (approve, reject, abort, edit), each ONE slash
command after a dialog that says what it does (the plan editor for an edit).

The target is the plan awaiting the decision (:mod:`tui.awaiting`). Before the
approve dialog opens, and again when it is confirmed, each step still to run is
checked against the state now (:mod:`tui.staleness`): stale steps are marked, and the
dialog offers Replan (reject this plan, then ``/incident replan``: a new plan from the
state now). A step that turned stale while the dialog was open reopens it with the
new marks instead of approving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from textual.screen import Screen

from . import awaiting, operator
from .console_host import ActionHost
from .dialogs import approved_while_paused
from .plan_view import decision_detail, lines_of
from .screens.modals import ConfirmScreen
from .screens.plan_edit import PlanEditScreen, Refusal
from .staleness import StaleStep, stale_steps
from .style import color

if TYPE_CHECKING:
    from core.host.link import Link

    from .widgets.incidents import Incidents


R = TypeVar("R")


class DecisionHost(ActionHost, Protocol):
    """What the decisions need besides an action's: the link, the plan a decision
    targets, a dialog, and a redraw."""

    link: Link | None

    def decision_target(self, action: str) -> awaiting.Target: ...

    def highlighted_plan(self) -> str | None: ...

    def need_link(self) -> Link | None: ...

    incidents_pane: Incidents

    @property
    def screen_stack(self) -> list[Screen[Any]]: ...

    def pop_screen(self) -> Any: ...

    async def push_screen_wait(self, screen: Screen[R]) -> R: ...

    def refresh_panes(self) -> None: ...


VERBS = {"approve": "Approve", "reject": "Reject", "abort_plan": "Abort"}
KEEP = {"approve": "Cancel", "reject": "Keep it proposed", "abort_plan": "Keep it running"}


def _key(stale: list[StaleStep]) -> set[tuple[int, tuple[str, ...]]]:
    return {(x.index, x.reasons) for x in stale}


class PlanDecisions:
    def __init__(self, app: DecisionHost) -> None:
        self.app = app

    def start(self, action: str) -> None:
        app = self.app
        verb = VERBS[action]
        if app.link_for(action) is None:
            return
        first = app.decision_target(action)
        if first.plan is None:
            app.notify(first.note, title=f"{verb.lower()}: no plan", severity="warning", timeout=6)
            return
        app.spawn(self.decide(action, first.plan, first.note))

    def next_decision(self) -> None:
        """Bring the next plan awaiting approval into view in the incidents pane."""
        app = self.app
        link = app.need_link()
        if link is None:
            return
        pid = awaiting.next_decision(link.state, app.highlighted_plan())
        if pid is None:
            app.notify("no plan awaits a decision", timeout=4)
            return
        while len(app.screen_stack) > 1:  # a detail screen: back to the panes
            app.pop_screen()
        pane = app.incidents_pane
        pane.refresh_from(link)
        pane.show_row(f"plan:{pid}")
        pane.focus()

    def stale(self, pid: str) -> list[StaleStep]:
        link = self.app.link
        if link is None or pid not in link.state.plans:
            return []
        return stale_steps(link.state, link.state.plans[pid])

    async def decide(self, action: str, pid: str, note: str) -> None:
        app = self.app
        verb = VERBS[action]
        while True:
            link = app.link
            if link is None or pid not in link.state.plans:
                return
            shown = self.stale(pid) if action == "approve" else []
            plan = link.state.plans[pid]
            detail = decision_detail(
                link.state, plan, action, lambda n: color(app, n), link.clock.now(), note=note, stale=shown
            )
            screen = ConfirmScreen(
                f"{verb} plan {pid}?", detail, verb, KEEP[action], wide=True, alt_label="Replan" if shown else None
            )
            choice = await app.push_screen_wait(screen)
            if choice == "alt":
                await self.replan(pid, shown)
                return
            if choice is not True:
                app.notify(f"{verb.lower()} cancelled; nothing changed", timeout=3)
                return
            link = app.link
            # The state moved while the dialog was open: decide only on a plan that still awaits it.
            if link is None or pid not in link.state.plans or not awaiting.awaits(link.state.plans[pid], action):
                now = link.state.plans[pid].state.value if link is not None and pid in link.state.plans else "gone"
                app.notify(f"{pid} is {now} now: nothing was done", severity="warning", timeout=8)
                return
            if action == "approve" and _key(self.stale(pid)) - _key(shown):
                note = "The state changed while the dialog was open: steps turned stale (marked). Nothing was approved."
                continue
            break
        res = await app.send(operator.plan_command(action, pid), f"{verb} {pid}")
        hint = approved_while_paused(link.clock.virtual, link.clock_running) if action == "approve" else None
        if res.get("status") == "success" and hint:
            app.notify(hint, severity="warning", timeout=8, holds=lambda link: not link.clock_running)

    async def replan(self, pid: str, stale: list[StaleStep]) -> None:
        """Reject the stale plan (the reason names its stale steps), then ask its incident's
        playbook for a new plan from the state now: two commands, each on the one path."""
        app = self.app
        link = app.link
        if link is None or pid not in link.state.plans:
            return
        inc = link.state.plans[pid].incident_id
        why = "; ".join(f"step {x.index}: {', '.join(x.reasons)}" for x in stale)
        res = await app.send(operator.plan_command("reject", pid, reason=f"stale: {why}"), f"Reject {pid}")
        if res.get("status") != "success":
            return
        await app.send(operator.replan_command(inc), f"Replan {inc}")

    def edit(self) -> None:
        """Open the plan editor on the plan awaiting approval; Save sends ``/incident edit``."""
        app = self.app
        link = app.link_for("edit_plan")
        if link is None:
            return
        t = app.decision_target("edit_plan")
        if t.plan is None:
            app.notify(t.note, title="edit: no plan", severity="warning", timeout=6)
            return
        pid = t.plan
        if t.note:
            app.notify(f"editing {t.note}", timeout=6)

        async def save(steps: list[str]) -> Refusal | None:
            res = await link.send(operator.edit_command(pid, steps))
            if res.get("status") == "success":
                return None
            err = res.get("error") or {}
            step = (err.get("details") or {}).get("step")
            return f"{err.get('code', 'ERROR')}: {err.get('message', '')}", step if isinstance(step, int) else None

        async def run() -> None:
            saved = await app.push_screen_wait(PlanEditScreen(pid, lines_of(link.state.plans[pid]), save))
            if isinstance(saved, list):
                app.notify(f"plan {pid} edited: {len(saved)} step(s)", timeout=4)
            app.refresh_panes()

        app.spawn(run())

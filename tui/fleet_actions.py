"""The operator's actions on the fleet that are not plan decisions: workflows (pause,
resume, start, cancel), a checkpoint, staged resumptions, drills and the simulated
clock. Each is ONE slash command through the console's link, after a dialog for what
cannot be taken back lightly.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rich.console import RenderableType

from . import operator
from .dialogs import drill_cancel_confirm, drill_confirm, workflow_confirm
from .screens.modals import ChooseScreen
from .screens.workflow import WorkflowScreen

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel
    from textual.screen import Screen

    from core.config import Config
    from core.host.link import Link

    from .widgets.incidents import Incidents
    from .widgets.workflows import Workflows

T = TypeVar("T")


class FleetHost(Protocol):
    """What the fleet actions need of the console (the app)."""

    link: Link | None
    config: Config
    readonly: bool
    workflows_pane: Workflows
    incidents_pane: Incidents

    @property
    def screen(self) -> Screen[Any]: ...

    def link_for(self, action: str) -> Link | None: ...

    async def send(self, text: str, what: str) -> dict[str, Any]: ...

    def report(self, res: dict[str, Any], what: str) -> bool: ...

    async def confirm(
        self, title: str, detail: RenderableType, label: str = "Confirm", cancel: str = "Cancel", wide: bool = False
    ) -> bool: ...

    async def push_screen_wait(self, screen: Screen[T]) -> T: ...

    def refresh_panes(self) -> None: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
    ) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


WORKFLOW_ACTIONS = {
    "pause_workflow": ("Pause", True),
    "resume_workflow": ("Resume", False),
    "start_workflow": ("Start", False),
    "cancel_workflow": ("Cancel", True),
}
"""Action -> (the verb its toasts use, whether a dialog confirms it first)."""


class FleetActions:
    def __init__(self, app: FleetHost) -> None:
        self.app = app

    # -- what the operator points at ---------------------------------------------
    def selected_workflows(self) -> list[str]:
        """The marked workflows (m), else the highlighted one."""
        marked = sorted(self.app.workflows_pane.marked)
        if marked and not isinstance(self.app.screen, WorkflowScreen):
            return marked
        wf = self.selected_workflow()
        return [wf] if wf else []

    def selected_workflow(self) -> str | None:
        screen = self.app.screen
        if isinstance(screen, WorkflowScreen):
            return screen.key
        opt = self.app.workflows_pane.highlighted_option
        return opt.id.split(":", 1)[1] if opt is not None and opt.id and opt.id.startswith("wf:") else None

    def selected_resumption(self) -> str | None:
        link = self.app.link
        if link is None:
            return None
        opt = self.app.incidents_pane.highlighted_option
        if opt is not None and opt.id and opt.id.startswith("resumption:"):
            return opt.id.split(":", 1)[1]
        live = [rid for rid, r in link.state.resumptions.items() if r.status == "active"]
        return live[0] if live else None

    # -- workflows and checkpoints ------------------------------------------------
    def workflow(self, action: str) -> None:
        app = self.app
        label, confirm = WORKFLOW_ACTIONS[action]
        link = app.link_for(action)
        if link is None:
            return
        wfs = self.selected_workflows()
        if not wfs:
            app.notify("highlight a workflow first (m marks several)", severity="warning")
            return

        async def run() -> None:
            if confirm:
                d = workflow_confirm(link.state, action, wfs)
                if not await app.confirm(d.title, d.detail, d.confirm, d.cancel, wide=len(wfs) > 1):
                    app.notify(f"{label.lower()} cancelled; nothing changed", timeout=3)
                    return
            for wf in wfs:
                await app.send(operator.workflow_command(action, wf), f"{label} {wf}")
            app.workflows_pane.marked.difference_update(wfs)
            app.refresh_panes()

        app.spawn(run())

    def checkpoint(self) -> None:
        app = self.app
        link = app.link_for("checkpoint")
        if link is None:
            return

        async def run() -> None:
            res = await link.send(operator.checkpoint_command())
            app.report(res, f"checkpoint #{(res.get('result') or {}).get('checkpoint', '?')}")
            app.refresh_panes()

        app.spawn(run())

    # -- staged resumptions ---------------------------------------------------------
    def resumption(self, action: str, verb: str) -> None:
        app = self.app
        if app.link_for(action) is None:
            return
        rid = self.selected_resumption()
        if rid is None:
            app.notify("no staged resumption is in progress", severity="warning")
            return

        async def run() -> None:
            if action == "advance_stage" and not await app.confirm(
                f"Advance resumption {rid}?", self.next_stage_text(rid), "Advance", "Keep it at this stage"
            ):
                return
            await app.send(operator.resumption_command(action, rid), f"{verb} {rid}")

        app.spawn(run())

    def next_stage_text(self, rid: str) -> str:
        """What advancing does: the next stage named, from the resumption's own steps."""
        link = self.app.link
        r = link.state.resumptions.get(rid) if link is not None else None
        if r is None:
            return f"no resumption {rid}: nothing would change."
        steps, cur = r.steps, r.next_step
        if cur >= len(steps):
            return f"{rid} has run all {len(steps)} of its stages: advancing changes nothing."
        what = steps[cur].what or "its next stage"
        return (
            f"Stage {cur + 1} of {len(steps)} runs now instead of waiting for utilisation to stay under the safe "
            f"threshold: {what}."
        )

    # -- drills ---------------------------------------------------------------------
    def choose_drill(self) -> None:
        app = self.app
        link = app.link_for("start_drill")
        if link is None:
            return
        simulated = link.clock.virtual

        async def run() -> None:
            names = operator.drill_names(simulated)
            title = "Start which drill?" if simulated else "Start which drill? (on real agents: these three)"
            name = await app.push_screen_wait(ChooseScreen(title, [(n, n) for n in names]))
            if name:
                await self.start_drill(name)

        app.spawn(run())

    def start_drill_named(self, name: str) -> None:
        if self.app.link_for("start_drill") is not None:
            self.app.spawn(self.start_drill(name))

    async def start_drill(self, name: str) -> None:
        app = self.app
        link = app.link
        d = drill_confirm(app.config, name, link is not None and link.clock.virtual)
        if isinstance(d, str):
            app.notify(d, severity="warning", timeout=8)
            return
        if not await app.confirm(d.title, d.detail, d.confirm, d.cancel):
            return
        # The command's own summary says when the fault comes; C cancels the drill.
        await app.send(operator.drill_command(name), f"drill {name}")

    def cancel_drill(self) -> None:
        app = self.app
        link = app.link_for("cancel_drill")
        if link is None:
            return
        rec = operator.running_drill(link.state.settings)
        if rec is None:
            app.notify("no drill is running; nothing was changed", severity="warning", timeout=5)
            return

        async def run() -> None:
            d = drill_cancel_confirm(rec)
            if not await app.confirm(d.title, d.detail, d.confirm, d.cancel):
                return
            await app.send(operator.drill_cancel_command(), "drill cancel")

        app.spawn(run())

    # -- the clock ------------------------------------------------------------------
    def toggle_clock(self) -> None:
        app = self.app
        if app.readonly:
            app.notify("read-only console: the clock is the host's to run", severity="warning")
            return
        link = app.link_for("toggle_clock")
        if link is None:
            return
        if not link.clock.virtual:
            app.notify(
                "real agents run on the wall clock: it cannot pause; nothing was changed (p pauses a workflow)",
                severity="warning",
                timeout=6,
            )
            return
        run = not link.clock_running
        speed = (link.speed if link.speed > 0 else app.config.console.speed) if run else None
        app.spawn(app.send(operator.clock_command(run, speed), "clock " + ("running" if run else "paused")))

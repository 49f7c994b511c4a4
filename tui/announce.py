"""What the console tells the operator unasked: toasts, each said once and fitted above
the command line, and new incidents brought to the operator.

A toast's words (title and message) are not shown again while they are still on
screen. A new incident comes as a toast, the terminal bell, the incident brought into
view in its pane, and an optional hook command (``[console] incident_hook``).

The hook is an argv list run without a shell, the incident's one-line summary added
as its last argument and the incident in its environment (``OPSDECK_INCIDENT_ID``,
``_TYPE``, ``_SEVERITY``, ``_SCENARIO``, ``_SUMMARY``): a desktop notifier
(``["notify-send", "opsdeck"]``), a pager, a chat webhook script. It
runs in the background with a time limit; a hook that cannot start, fails or overruns
is reported once in a toast, and the console goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from core.event_types import INCIDENT_OPENED, TASK_WAITING_INPUT, severity_of, summarise
from core.events import Event, Severity
from core.timefmt import clock, duration

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from core.config import Config
    from core.host.link import Link
    from core.runtimes.opening import Proving

    from .widgets.header_gauges import HeaderGauges
    from .widgets.incidents import Incidents


Holds = Callable[["Link"], bool]
"""Whether a toast's words are still true of the state the link shows."""


class Repeats:
    """The toasts on screen now, by (title, message), with when each one goes, and the
    condition some of them hold under: "the clock is paused: ... when it runs" is
    untrue once the clock runs, "the host is gone" once a host is back."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}
        self._holds: dict[tuple[str, str], Holds] = {}

    def fresh(self, title: str, message: str, timeout: float, holds: Holds | None = None) -> bool:
        """True (and remembered for ``timeout`` seconds) unless the same toast is showing."""
        now = time.monotonic()
        self._until = {k: t for k, t in self._until.items() if t > now}
        self._holds = {k: h for k, h in self._holds.items() if k in self._until}
        key = (title, message)
        if key in self._until:
            return False
        self._until[key] = now + timeout
        if holds is not None:
            self._holds[key] = holds
        return True

    def untrue(self, link: Link) -> set[tuple[str, str]]:
        """The toasts on screen whose condition no longer holds, forgotten (said again
        when it holds again)."""
        gone = {k for k, holds in self._holds.items() if not holds(link)}
        for k in gone:
            del self._holds[k]
            self._until.pop(k, None)
        return gone


TOAST_ROWS = 6
"""A toast's rows with its margin: a title, two lines of message, padding."""


def toast_room(height: int) -> int:
    """How many toasts fit under the header and above the command line and footer (at
    least one): 2 at 80x24, 6 at 160x48."""
    return max(1, (height - 8) // TOAST_ROWS)


class AnnouncerHost(Protocol):
    """What the announcer needs of the console (the app): its configuration, its link,
    the incidents pane, and the app's toast, bell and workers."""

    config: Config
    link: Link | None
    incidents_pane: Incidents
    header_pane: HeaderGauges
    sub_title: str

    def bell(self) -> None: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        holds: Holds | None = None,
    ) -> None: ...

    def call_after_refresh(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> bool: ...

    def run_worker(
        self, work: Coroutine[Any, Any, None], *, group: str = "default", exit_on_error: bool = True
    ) -> object: ...


HOOK_TIMEOUT_S = 10.0


def incident_summary(inc: dict[str, Any]) -> str:
    """One line: what opened, how bad, what it touches, when."""
    sev = str(inc.get("severity") or "?")
    wfs = inc.get("affected_workflows") or []
    at = inc.get("detected_at")
    when = f" at {clock(at)}" if isinstance(at, (int, float)) else ""
    touches = f", {len(wfs)} workflow(s) affected" if wfs else ""
    return f"{inc.get('id')} {inc.get('type') or inc.get('scenario')} ({sev}){touches}, detected{when}"


def hook_env(inc: dict[str, Any]) -> dict[str, str]:
    return {
        "OPSDECK_INCIDENT_ID": str(inc.get("id", "")),
        "OPSDECK_INCIDENT_TYPE": str(inc.get("type", "")),
        "OPSDECK_INCIDENT_SEVERITY": str(inc.get("severity", "")),
        "OPSDECK_INCIDENT_SCENARIO": str(inc.get("scenario", "")),
        "OPSDECK_INCIDENT_SUMMARY": incident_summary(inc),
    }


async def run_hook(argv: list[str], inc: dict[str, Any], timeout: float = HOOK_TIMEOUT_S) -> str | None:
    """Run the hook for ``inc``; None when it exited 0, else what went wrong."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            incident_summary(inc),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **hook_env(inc)},
        )
    except OSError as exc:
        return f"cannot start {argv[0]!r}: {exc.strerror or exc}"
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"{argv[0]!r} ran over {duration(timeout)} and was stopped"
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
        return f"{argv[0]!r} exited with status {proc.returncode}" + (f": {tail[0][:160]}" if tail else "")
    return None


class Announcer:
    """Announces each incident once, when its INCIDENT_OPENED event arrives; also the
    events an operator subscribed to and critical events that open no incident."""

    def __init__(self, app: AnnouncerHost) -> None:
        self.app = app
        self.announced: set[str] = set()
        self.hook_runs = 0
        self.hook_failures: list[str] = []

    def event(self, ev: Event) -> None:
        """An event arriving live: a toast when it is worth one."""
        link = self.app.link
        subs = link.state.settings.get("subscriptions") if link is not None else None
        if isinstance(subs, dict):  # /coordination-hub subscribe-event: one notification per matching event
            names = sorted(n for n, types in subs.items() if ev.type in types)
            if names:
                self.app.notify(f"{ev.type}: {summarise(ev)}", title=f"subscription {', '.join(names)}", timeout=6)
        if ev.type == INCIDENT_OPENED and isinstance(ev.data.get("incident"), dict):
            self.incident_opened(ev.data["incident"])
        elif ev.type == TASK_WAITING_INPUT:
            self.task_waiting(ev)
        elif severity_of(ev) is Severity.CRITICAL and "incident_id" not in ev.data:
            # An incident's own detection event is announced with the incident.
            self.app.notify(f"{ev.type}: {summarise(ev)}", title="critical event", severity="error", timeout=6)

    def host_status(self, message: str | None) -> None:
        """The attached host went away (``message`` says how) or came back."""
        app = self.app
        link = app.link
        if link is not None:
            app.sub_title = link.describe()
        app.header_pane.refresh()
        if message is not None:
            app.notify(
                f"{message}; showing the last state it committed, actions are refused until a host is back",
                title="host gone",
                severity="error",
                timeout=10,
                holds=lambda link: bool(link.gone),
            )
        elif link is not None:
            app.notify(link.describe(), title="host back", timeout=5)

    def proving(self, proving: Proving) -> None:
        """The last run's agent hosts being proved while the link opens (up to a
        handshake's time, before any pane can show the run): in the header while it
        lasts, and the count, as a toast too, when done."""
        app = self.app
        app.header_pane.status_text = f"opening: {proving.words()}"
        app.header_pane.refresh()
        if proving.took_s is not None:
            app.notify(proving.words(), title=proving.title, timeout=10)

    def link_trouble(self, message: str) -> None:
        """Something stopped on the console's side of the link (the embedded host's clock,
        the following of an attached host's events), fell behind for now (a store read
        met a lock: a warning) or caught up again: what happened and what goes on."""
        app = self.app
        link = app.link
        severity: SeverityLevel = "error"
        if link is not None:
            app.sub_title = link.describe()
            severity = "error" if link.trouble else "warning" if link.stale else "information"
        app.header_pane.refresh()
        app.notify(message, title="the console's link", severity=severity, timeout=15)

    def incident_opened(self, inc: dict[str, Any]) -> None:
        app = self.app
        iid = str(inc.get("id") or "")
        if not iid or iid in self.announced:
            return
        self.announced.add(iid)
        sev = str(inc.get("severity") or "")
        app.bell()
        app.notify(
            incident_summary(inc) + "; i jumps to the plan awaiting a decision",
            title="new incident",
            severity="error" if sev in ("critical", "high") else "warning",
            timeout=10,
        )
        app.call_after_refresh(self.bring_into_view, iid)
        hook = app.config.console.incident_hook
        if hook:
            app.run_worker(self._hook(list(hook), inc), group="incident-hook", exit_on_error=False)

    def task_waiting(self, ev: Event) -> None:
        """A task waits for a human: a toast and the bell, once per wait (its event's seq)."""
        key = f"input:{ev.data.get('task')}:{ev.seq}"
        if key in self.announced:
            return
        self.announced.add(key)
        self.app.bell()
        self.app.notify(
            f"{ev.data.get('task')} on {ev.data.get('agent')} waits for input ({ev.data.get('reason')}) since "
            f"{clock(ev.ts)}; open its agent and press s to answer",
            title="waiting for input",
            severity="warning",
            timeout=12,
        )

    def bring_into_view(self, iid: str) -> None:
        app = self.app
        link = app.link
        if link is None:
            return
        pane = app.incidents_pane
        pane.refresh_from(link)
        pane.show_row(f"incident:{iid}")

    async def _hook(self, argv: list[str], inc: dict[str, Any]) -> None:
        problem = await run_hook(argv, inc)
        self.hook_runs += 1
        if problem is not None:
            self.hook_failures.append(problem)
            self.app.notify(f"incident hook: {problem}", severity="warning", timeout=8)

"""What the parts of the console need of the app, declared once. An action module: the
link an action may use, the one command path, a toast and a worker (``ActionHost``;
modules that need more, a dialog or the plan a decision targets, extend it). A screen
or widget reading the app: ``ConsoleApp``, the app's class, reached through
``textual.getters.app``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from textual.app import App

from .style import Themed

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from core.host.link import Link

    from .log_source import LogSource


class Toasts(Protocol):
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        holds: Callable[[Link], bool] | None = None,
    ) -> None: ...


class ActionHost(Themed, Toasts, Protocol):
    def link_for(self, action: str) -> Link | None: ...

    async def send(self, text: str, what: str) -> dict[str, Any]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class ConsoleApp(App[int]):
    """The console app as its screens and widgets read it: the link (None while it opens
    or after it closed), the stored log's reader and the rollback a checkpoint row asks
    for. ``tui.app.OpsdeckApp`` is the one implementation; a screen declares
    ``app = getters.app(ConsoleApp)`` and reads these typed."""

    link: Link | None
    log_source: LogSource

    def request_rollback(self, cp_id: int) -> None:
        raise NotImplementedError

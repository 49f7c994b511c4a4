"""What an action module needs of the console (the app), declared once: the link an
action may use, the one command path, a toast and a worker. Modules that need more
(a dialog, the plan a decision targets) extend it."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from .style import Themed

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from core.host.link import Link


class Toasts(Protocol):
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
    ) -> None: ...


class ActionHost(Themed, Toasts, Protocol):
    def link_for(self, action: str) -> Link | None: ...

    async def send(self, text: str, what: str) -> dict[str, Any]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

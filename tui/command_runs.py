"""What the ``:`` command line runs: the typed slash command through the link, the one
command path. A success closes the line and opens its result view (``r`` there runs
it again when it only reads); a failure stays in the line with its code, message and
correction, and nothing was applied."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from . import operator
from .screens.result import ResultScreen

if TYPE_CHECKING:
    from textual.screen import Screen

    from core.host.link import Link

    from .command_line import CommandLine


class RunsHost(Protocol):
    """What running a typed command needs of the console (the app)."""

    link: Link | None
    command_line: CommandLine

    def need_link(self) -> Link | None: ...

    def push_screen(self, screen: Screen[Any]) -> Any: ...

    def refresh_panes(self) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class CommandRuns:
    def __init__(self, app: RunsHost) -> None:
        self.app = app

    def submit(self, text: str) -> None:
        self.app.spawn(self.run(text))

    async def run(self, text: str) -> None:
        app = self.app
        cl = app.command_line
        link = app.need_link()
        if link is None:
            return
        res = await link.send(text)
        if res.get("status") == "success":
            cl.show_error("")
            cl.action_close()
            self.show_result(text, res)
        else:
            cl.show_failure(text, res)
        app.refresh_panes()

    def show_result(self, text: str, res: dict[str, Any]) -> None:
        """The result view of a command that ran; ``r`` there re-runs it if it only reads."""
        link = self.app.link

        async def rerun(cmd: str) -> dict[str, Any]:
            assert link is not None
            return await link.send(cmd)

        self.app.push_screen(ResultScreen(text, res, rerun if operator.command_mutates(text) is False else None))

"""Scripts against a live host: the same steps, sent through the host's endpoint.

Commands go to ``POST /v1/commands``; event lines through the publish command path
(``/coordination-hub publish-event``); ``advance`` asks a simulated host to run its
clock forward (``/host advance``) and is refused by a real-time one; expectations
wait on the host's event stream, their ``within`` read as wall-clock time. Faults
need the simulated runtime in this process, so they are refused with a message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from ..commands.script import Step, StepFailed, StepRunner
from ..events import EventHeader
from .client import HostClient
from .errors import HostGone, HostRefused

CATCH_UP_S = 30.0
"""How long a step waits for the stream to deliver the events its command committed."""


class HostScriptRunner(StepRunner):
    """Runs script steps on the host behind ``client``."""

    def __init__(
        self, client: HostClient, out: Callable[[str], None], quiet: bool = False, actor: str = "script"
    ) -> None:
        super().__init__(out, quiet=quiet, actor=actor)
        self.client = client
        self.simulated = True
        self.last_seq = 0
        self._arrived = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._lost: HostGone | HostRefused | None = None
        """Why the stream stopped (the host gone, or its refusal): raised by the next step."""

    async def start(self) -> None:
        """Follow the stream from the host's head: the script sees what happens from now."""
        health = await self.client.health()
        self.simulated = bool(health.get("simulated"))
        self.last_seq = int(health["seq"])
        self._follower = asyncio.get_running_loop().create_task(self._follow(self.last_seq))

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except (asyncio.CancelledError, HostGone, HostRefused):
                pass

    async def _follow(self, since: int) -> None:
        try:
            async for ev in self.client.events(since):
                self._on_event(ev)
                self.last_seq = ev.seq
                self._wake()
        except (HostGone, HostRefused) as exc:
            self._lost = exc
            self._wake()

    def _wake(self) -> None:
        ev, self._arrived = self._arrived, asyncio.Event()
        ev.set()

    def _check(self) -> None:
        if self._lost is not None:
            raise self._lost

    async def _until(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            self._check()
            left = deadline - time.monotonic()
            if left <= 0:
                return self._unseen()
            waiter = self._arrived
            try:
                await asyncio.wait_for(waiter.wait(), left)
            except TimeoutError:
                return cond() or self._unseen()
        return True

    def _unseen(self) -> bool:
        """The wait is over without what it waited for: False, unless the host has been
        refusing the stream as busy (asked again meanwhile), so that nothing could be seen:
        then that refusal is raised (an ``expect no ...`` must not pass unseen)."""
        if self.client.busy is not None:
            raise self.client.busy
        return False

    async def _catch_up(self) -> None:
        """Wait until the stream has delivered everything committed so far."""
        head = int((await self.client.health())["seq"])
        await self._until(lambda: self.last_seq >= head, CATCH_UP_S)

    # -- hooks ------------------------------------------------------------------
    async def _command(self, text: str) -> dict[str, Any]:
        self._check()
        resp = await self.client.send(text, actor=self.actor)
        await self._catch_up()
        return resp

    async def _inject(self, header: EventHeader) -> dict[str, Any] | None:
        payload = json.dumps(
            {"type": header.type, "component": header.component, "scope": header.scope, "data": header.data},
            ensure_ascii=False,
        ).replace("'", "\\u0027")
        resp = await self._command(f"/coordination-hub publish-event '{payload}'")
        if resp["status"] == "success":
            return None
        err = resp["error"]
        return {"code": err["code"], "message": err["message"]}

    async def _advance(self, seconds: float) -> None:
        if not self.simulated:
            raise StepFailed(
                f"advance {seconds:g}s: the host (pid {self.client.pid}) runs in real time on the wall "
                "clock; simulated time cannot be advanced (use expect ... within DURATION to wait)"
            )
        resp = await self._command(f"/host advance {seconds:g}s")
        if resp["status"] != "success":
            raise StepFailed(f"{resp['error']['code']}: {resp['error']['message']}")

    async def _fault(self, st: Step) -> None:
        raise StepFailed(
            f"faults need the simulated runtime in this process; the host (pid {self.client.pid}) runs "
            "this fleet, and faults are not sent through its endpoint (run the script without a live host)"
        )

    async def _wait_for(self, st: Step, start: int, within: float) -> int | None:
        """Wait on the event stream for ``within`` wall-clock seconds."""
        found: list[int] = []

        def hit() -> bool:
            i = self._find(st, start)
            if i is not None:
                found.append(i)
                return True
            return False

        if not await self._until(hit, within):
            await self._window_delivered()
            hit()  # delivered late, committed within the window
        return found[0] if found else None

    async def _let_pass(self, seconds: float) -> None:
        await self._until(lambda: False, seconds)
        await self._window_delivered()

    async def _window_delivered(self) -> None:
        """At the end of an expectation's window: what the host committed up to now is
        waited for (a stream that lags, breaks or is refused meanwhile delivered less), so
        that the expectation judges every event of the window, or fails saying it cannot."""
        head = int((await self.client.health())["seq"])
        if not await self._until(lambda: self.last_seq >= head, CATCH_UP_S):
            why = self.client.broken or f"it delivered no more within {CATCH_UP_S:g}s"
            raise StepFailed(
                f"the host is at seq {head:,} and its event stream delivered up to seq {self.last_seq:,} ({why}): "
                "whether the window held such an event cannot be told"
            )

"""How the console reaches the fleet's host: attach to a live host's replica, or host
the database itself (embedded), decided once when the console opens.

Replaying a large log is CPU work: the replica (or the simulated host's engine) is
folded in a worker thread so the UI keeps drawing meanwhile. The host's modules (the
engine, the store, the command language: about half of the console's imports) are
imported the same way, when the link opens, after the first frame (:func:`host_modules`).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import Config
from core.host.lease import current_holder
from core.host.parts import import_host_parts
from core.runtimes.opening import PROVING, Proving

if TYPE_CHECKING:
    from core.host.host import Host
    from core.host.link import Link

HostFactory = Callable[[], Awaitable["Host"]]

HOST_MODULES = ("core.host.host", "core.host.link", "core.host.replica")
"""What opening a link needs beyond what the first frame does."""


async def host_modules() -> None:
    """Import :data:`HOST_MODULES` and the parts a host is made with
    (:func:`core.host.parts.import_host_parts`) in a worker thread: the UI loop keeps drawing."""

    def load() -> None:
        for m in HOST_MODULES:
            importlib.import_module(m)
        import_host_parts()

    await asyncio.to_thread(load)


class LinkOpenError(Exception):
    """The database could not be opened; the message says why, for the operator."""


@dataclass(frozen=True)
class LinkOptions:
    """What the console was started with that decides how it reaches the host.

    ``attach``: None attaches when a live host holds ``db`` (else the console hosts
    it), True always attaches (reads a replica), False always hosts. ``host_factory``
    opens the host on a real runtime (``opsdeck run``); without it the console hosts
    the simulated runtime."""

    db: Path
    config: Config
    demo: bool = False
    seed: int = 0
    speed: float = 0.0
    readonly: bool = False
    attach: bool | None = None
    host_factory: HostFactory | None = None
    create: bool = True
    listen: str | None = None

    def wants_attach(self) -> bool:
        if self.attach is not None:
            return self.attach
        return self.db.exists() and current_holder(self.db) is not None

    async def open(self, proving: Callable[[Proving], None] | None = None) -> Link:
        """A started link; raises :class:`LinkOpenError` (the lease given back) when
        neither attaching nor hosting works. ``proving`` is told while a real runtime
        proves the last run's agent hosts (:mod:`core.runtimes.opening`)."""
        PROVING.set(proving)  # this task's context: the host it opens proves its hosts here
        await host_modules()
        from core.host.host import HostError
        from core.host.lease import LeaseHeld
        from core.store import StoreError

        link: Link | None = None
        try:
            if self.wants_attach():
                link = await self._attached()
            else:
                try:
                    link = await self._embedded()
                except LeaseHeld:
                    link = await self._attached()  # another host took the database first
            await link.start()
        except Exception as exc:
            known = isinstance(exc, (StoreError, HostError, OSError, ValueError))
            if link is not None:
                try:
                    await link.close()  # a host that could not serve gives its lease back
                except Exception:  # noqa: BLE001
                    pass
            raise LinkOpenError(str(exc) if known else f"{type(exc).__name__}: {exc}") from exc
        return link

    async def _attached(self) -> Link:
        from core.host.attached import AttachedLink
        from core.host.replica import Replica

        replica = await asyncio.to_thread(asyncio.run, Replica.open(self.db, self.config))
        link = AttachedLink(self.db, self.config, readonly=self.readonly, replica=replica)
        await link.connect()
        return link

    async def _embedded(self) -> Link:
        from core.host.host import Host
        from core.host.link import EmbeddedLink

        if self.host_factory is not None:
            # A real runtime's connections and samplers live in the app's own loop.
            host = await self.host_factory()
        else:
            opening = Host.open_sim(
                self.db,
                self.config,
                demo=self.demo,
                seed=self.seed,
                speed=self.speed,
                recurring=self.demo,
                create=self.create,
            )
            host = await asyncio.to_thread(asyncio.run, opening)
        return EmbeddedLink(host, listen=self.listen)

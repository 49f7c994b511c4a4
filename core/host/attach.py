"""Reaching a database the way a writer must: through its live host, or under its lease.

A process that would write (``exec``, ``script``) either attaches to the host that
holds the lease or, when nobody holds it, takes the lease itself for as long as it
works in-process, so that two of them never write the same log at once. A holder
that has not opened its endpoint yet (a host still replaying its log) or that
serves no one (another in-process tool, which finishes soon) is waited for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .client import HostClient
from .errors import no_endpoint
from .lease import Lease, LeaseHeld, acquire, current_holder, host_info

WAIT_S = 30.0


async def connect(db: str | Path, *, kind: str, wait: float = WAIT_S) -> HostClient | Lease:
    """A client of ``db``'s live host, or the lease of ``db`` held by this process."""
    deadline = time.monotonic() + wait
    while True:
        holder = current_holder(db)
        if holder is None:
            try:
                return acquire(db, host_info(db, kind, host=False))
            except LeaseHeld:
                continue
        if holder.host and holder.socket:
            return HostClient(socket_path=holder.socket, pid=holder.pid, db=db, holder=holder)
        if time.monotonic() > deadline:
            if holder.host:
                raise no_endpoint(holder.pid, db, wait, holder.command)
            raise LeaseHeld(holder, db)
        await asyncio.sleep(0.05)

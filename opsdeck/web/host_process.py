"""The host ``opsdeck web`` starts when nobody holds the database, and its end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from core.host.client import HostClient, HostGone, HostRefused
from core.host.lease import current_holder

from . import WebError

START_TIMEOUT_S = 120.0
"""Opening a large database on a loaded machine takes a while; a hang does not."""
ATTACH_TIMEOUT_S = 30.0
"""How long a holder of the lease may take to open its socket."""


class HostProcess:
    """An ``opsdeck serve`` subprocess this ``opsdeck web`` owns."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    def tail(self, n: int = 5) -> str:
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(lines[-n:])

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the host commits and releases its lease), SIGKILL if it will not go."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(OSError):
            self.log.unlink()


async def _healthy(db: Path) -> bool:
    client = HostClient.for_db(db)
    if client is None:
        return False
    try:
        await client.health()
        return True
    except (HostGone, HostRefused, TimeoutError, OSError):  # not listening yet, busy, or going away: ask again
        return False
    finally:
        await client.close()


async def ensure_host(db: Path, demo: bool, config: Path | None) -> HostProcess | None:
    """None when a live host holds ``db``; else the host started for it, once it answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ATTACH_TIMEOUT_S
    while (holder := current_holder(db)) is not None:  # a host that is still starting gets a while
        if await _healthy(db):
            return None
        if loop.time() > deadline:
            raise WebError(f"{db}: held by {holder.describe()}, which does not answer on its socket")
        await asyncio.sleep(0.2)
    if not demo and not await asyncio.to_thread(db.exists):
        raise WebError(f"no such database: {db} (pass --demo for the demo fleet, or start its host with opsdeck serve)")
    cmd = [sys.executable, "-m", "opsdeck"]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += ["serve", "--db", str(db)]
    if demo:
        cmd.append("--demo")
    fd, name = tempfile.mkstemp(prefix="opsdeck-web-host-", suffix=".log")  # 0600
    log = Path(name)
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True
        )
    finally:
        os.close(fd)
    hp = HostProcess(proc, log)
    try:
        await _wait_healthy(hp, db)
    except BaseException:  # it did not come up, or we were interrupted: never leave it behind
        await hp.stop()
        raise
    return hp


async def _wait_healthy(hp: HostProcess, db: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while True:
        if hp.returncode is not None:
            raise WebError(f"the host for {db} exited with {hp.returncode}: {hp.tail() or 'no output'}")
        if await _healthy(db):
            return
        if loop.time() > deadline:
            raise WebError(f"the host for {db} did not answer within {START_TIMEOUT_S:g}s: {hp.tail() or 'no output'}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hp.proc.wait(), 0.2)

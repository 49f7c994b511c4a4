"""The end of a run reads no more than it needs: a host whose end was seen (its pidfd)
is not read again (each read is a psutil look at /proc, about 60 per shutdown of 20
hosts before), and the launcher's exit is waited for on its pidfd, not by a thread
started for that alone. A host still running is still read, and a launcher that does
not exit is killed."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import psutil
import pytest

from core.runtimes import local_hosts
from core.runtimes.adoption import Adoption
from core.runtimes.fleet import Fleet, Timing
from core.runtimes.host_launcher import HostLauncher
from core.runtimes.local_hosts import LocalLinks, ProcessHost


def test_a_host_seen_ended_is_not_read_again_and_a_running_one_is(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = local_hosts.same_process

    def counted(pid: int, create_time: float) -> bool:
        reads.append(pid)
        return real(pid, create_time)

    monkeypatch.setattr(local_hosts, "same_process", counted)

    async def main() -> None:
        links = LocalLinks(Fleet(Timing(), actor="test"), Adoption(b"secret"))
        p = subprocess.Popen(["sleep", "60"])
        try:
            # Known by pid and create time only (as an adopted host): its liveness is a read.
            h = ProcessHost(
                "agent_001", "/nonexistent.sock", pid=p.pid, create_time=psutil.Process(p.pid).create_time()
            )
            assert not await links.ended(h, 0.1)  # the negative case: running, not taken for ended
            assert not h.exited
            assert links.alive(h) and reads == [p.pid]
            p.kill()
            assert await links.ended(h, 5.0)
            assert h.exited
            reads.clear()
            assert not links.alive(h) and not links.alive(h)
            assert reads == []  # its end was seen: no read
            assert await links.ended(h, 5.0)  # and not waited for again
        finally:
            p.kill()
            p.wait()

    asyncio.run(main())


def test_a_launcher_that_does_not_exit_is_killed_and_reaped_without_a_thread(tmp_path: Path) -> None:
    async def main() -> tuple[int | None, int]:
        launcher = HostLauncher(tmp_path)
        launcher.popen = subprocess.Popen(["sleep", "60"])  # sees no end of its requests: never exits
        before = threading.active_count()
        await asyncio.wait_for(launcher.close(), 10.0)
        return launcher.popen.returncode, threading.active_count() - before

    rc, threads = asyncio.run(main())
    assert rc == -9  # killed, and reaped
    assert threads == 0

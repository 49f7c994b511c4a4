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
from core.runtimes.dispatch import Dispatch
from core.runtimes.fleet import Fleet, HostRecord, Timing
from core.runtimes.host_launcher import HostLauncher
from core.runtimes.limits import Mechanisms
from core.runtimes.local_hosts import LocalLinks, ProcessHost
from core.runtimes.sampler import Sampler
from core.runtimes.supervise import Supervisor


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


class CountingLinks:
    """Links whose killed hosts end once their end is waited for (as a process killed
    takes a while to be gone), except ``stuck`` ones; counting liveness reads."""

    def __init__(self, stuck: set[str]) -> None:
        self.stuck = stuck
        self.killed: set[str] = set()
        self.gone: set[str] = set()
        self.reads = 0

    def alive(self, h: HostRecord) -> bool:
        self.reads += 1
        return h.agent not in self.gone

    def kill(self, h: HostRecord) -> None:
        self.killed.add(h.agent)

    def kill_task_group(self, h: HostRecord) -> None:
        pass

    def close(self, h: HostRecord) -> None:
        pass

    def release(self, h: HostRecord) -> None:
        pass

    async def ended(self, h: HostRecord, timeout: float) -> bool:
        if h.agent in self.killed and h.agent not in self.stuck:
            self.gone.add(h.agent)
        return h.agent in self.gone


@pytest.mark.parametrize("stuck", [set(), {"agent_007"}])
def test_a_shutdown_of_hosts_still_starting_reads_each_a_few_times_and_reports_one_it_cannot_end(
    tmp_path: Path, stuck: set[str]
) -> None:
    n = 200
    fleet: Fleet[HostRecord] = Fleet(Timing(stop_grace_s=0.2), actor="test")
    links = CountingLinks(stuck)
    sup = Supervisor(fleet, links, Dispatch(fleet, links, tmp_path, Mechanisms("rlimit_as", "nice"), Sampler()))  # type: ignore[arg-type]
    for i in range(1, n + 1):  # started here, never reached: each is killed at the shutdown
        h = HostRecord(f"agent_{i:03}", f"/nonexistent/{i}.sock", pid=10_000 + i, started=True)
        fleet.hosts[h.agent] = h
    asyncio.run(sup.shutdown(release=False))
    assert links.killed == set(fleet.hosts)
    assert links.reads <= 4 * n, links.reads  # each host's kill read every host killed before: n*n/2
    # The case that must not pass as ended: a host that outlives its kill is said.
    assert fleet.left_running == [f"{a} (pid {fleet.hosts[a].pid})" for a in sorted(stuck)]


def test_a_host_seen_ended_is_not_waited_for_again_whatever_its_pid_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child of ours seen ended is reaped: its pid is free and may be another process's.
    Asked again (the shutdown's second wait), the end seen stands; the pid is not waited on."""

    async def main() -> None:
        links = LocalLinks(Fleet(Timing(), actor="test"), Adoption(b"secret"))
        h = ProcessHost("agent_001", "/nonexistent.sock")
        h.popen = subprocess.Popen(["true"])
        h.pid = h.popen.pid
        assert await links.ended(h, 10.0) and h.exited
        assert h.popen.returncode == 0  # reaped: its pid is free

        async def reused(pid: int, create_time: float | None, timeout: float) -> bool:
            return False  # the pid another process's now, running

        monkeypatch.setattr(local_hosts, "process_ended", reused)
        assert await links.ended(h, 0.1)  # main: False, the reused pid waited for
        assert h.exited and not links.alive(h)

    asyncio.run(main())

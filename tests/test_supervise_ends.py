"""A host taken for dead is ended, and the shutdown ends every process it started.

Before, :meth:`Supervisor.died` marked a host dead without ending its process (a host
the sampler could not read, still running), the shutdown skipped dead-marked hosts,
and the waits for a killed host blocked the event loop (``Popen.wait(1.0)`` per host).
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from pathlib import Path

import psutil

from core.runtimes.adoption import Adoption
from core.runtimes.dispatch import Dispatch
from core.runtimes.fleet import Fleet, Timing
from core.runtimes.limits import Mechanisms
from core.runtimes.local_hosts import LocalLinks, ProcessHost
from core.runtimes.sampler import Sampler, process_ended
from core.runtimes.supervise import Supervisor


def _parts(tmp_path: Path) -> tuple[Fleet[ProcessHost], LocalLinks, Supervisor[ProcessHost]]:
    fleet: Fleet[ProcessHost] = Fleet(Timing(stop_grace_s=0.2), actor="test")
    links = LocalLinks(fleet, Adoption(b"secret"))
    dispatch = Dispatch(fleet, links, tmp_path, Mechanisms("rlimit_as", "nice"), Sampler())
    return fleet, links, Supervisor(fleet, links, dispatch)


def _host(agent: str, argv: list[str]) -> ProcessHost:
    popen = subprocess.Popen(argv, start_new_session=True)
    return ProcessHost(
        agent, "/nonexistent.sock", pid=popen.pid, create_time=psutil.Process(popen.pid).create_time(), popen=popen
    )


def test_a_host_taken_for_dead_is_killed_and_the_shutdown_sees_it_gone(tmp_path: Path) -> None:
    async def main() -> tuple[int | None, list[str]]:
        fleet, _, sup = _parts(tmp_path)
        h = _host("agent_001", ["sleep", "60"])
        fleet.hosts[h.agent] = h
        sup.died(h, "agent process gone")  # its process still runs
        assert h.dead
        await sup.shutdown(release=False)
        return h.popen.returncode if h.popen else None, fleet.left_running

    rc, left = asyncio.run(main())
    assert rc == -9 and left == []  # killed and reaped


def test_the_shutdown_ends_a_host_that_ignores_it_without_blocking_the_loop(tmp_path: Path) -> None:
    async def main() -> tuple[ProcessHost, float, list[str]]:
        fleet, _, sup = _parts(tmp_path)
        hosts = [_host(f"agent_{i:03}", ["sleep", "60"]) for i in range(3)]  # never answer a shutdown
        fleet.hosts.update({h.agent: h for h in hosts})
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        t = asyncio.get_running_loop().create_task(ticker())
        await sup.shutdown(release=False)
        t.cancel()
        gap = max(b - a for a, b in itertools.pairwise(ticks))
        return hosts[0], gap, fleet.left_running

    h, gap, left = asyncio.run(main())
    assert h.popen is not None and h.popen.returncode == -9 and left == []
    assert gap < 0.5, f"the loop was blocked {gap:.2f}s"


def test_a_process_that_does_not_end_is_waited_for_then_reported(tmp_path: Path) -> None:
    # The negative case: process_ended says False while the process runs (then it is killed here).
    async def main() -> tuple[bool, bool]:
        p = subprocess.Popen(["sleep", "60"])
        ct = psutil.Process(p.pid).create_time()
        running = await process_ended(p.pid, ct, 0.2)
        p.kill()
        ended = await process_ended(p.pid, ct, 5.0)
        p.wait()
        return running, ended

    assert asyncio.run(main()) == (False, True)

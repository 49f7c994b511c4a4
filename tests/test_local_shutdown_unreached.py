"""The local runtime's shutdown ends a host it started and never sent anything with a
kill (it runs nothing; asking it to exit would wait for its start and its connection),
and asks every host a command reached to exit (its run is stopped, the host exits 0)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .local_harness import alive, drive, header, open_text, task_toml, workflow_toml

pytestmark = pytest.mark.slow

ONE_LONG_TASK_TWO_AGENTS = header() + workflow_toml(
    "w", task_toml("t0", ["sleep", "30"], "shell"), phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 2}
)


async def test_an_unreached_host_is_killed_and_a_reached_one_asked(tmp_path: Path) -> None:
    engine, runtime, rec = await open_text(tmp_path / "r.db", ONE_LONG_TASK_TWO_AGENTS, tmp_path)
    try:
        await drive(engine, lambda: rec.of("TASK_STARTED"))
        busy = engine.state.tasks["w/t0"].agent
        hosts = dict(runtime.fleet.hosts)
        assert busy is not None and len(hosts) == 2
        idle = next(a for a in hosts if a != busy)
        await drive(engine, lambda: hosts[idle].connected_once)
        assert hosts[busy].reached and not hosts[idle].reached
        pids = {a: h.pid for a, h in hosts.items()}
        killed: list[str] = []
        kill = runtime.links.kill
        runtime.links.kill = lambda h: (killed.append(h.agent), kill(h))[1]  # type: ignore[method-assign]
    finally:
        await runtime.shutdown()
        await engine.close()
    assert runtime.left_running == []
    assert not [p for p in pids.values() if p is not None and alive(p)]
    assert killed == [idle], "the idle host was killed, the busy one asked"
    # No socket left behind: the killed host's is removed for it (it could not).
    assert not [h.address for h in hosts.values() if os.path.lexists(h.address)]

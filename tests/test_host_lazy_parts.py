"""What a host loads only when used: the control endpoint's server (aiohttp), whose socket
listens as soon as the host serves and which loads with the first connection
(:mod:`core.host.door`); and, on a host that detects no incident (``opsdeck run --headless``
without ``--incidents``), the command language and the incident pipeline
(:class:`core.host.parts.HostParts`), made by the first command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import run_python

DOOR_PROBE = """
import asyncio, os, sys
from core.config import Config
from core.host.client import HostClient
from core.host.host import Host

async def main(db, connect):
    host = await Host.open_sim(db, Config(), create=True, speed=0)
    await host.serve()
    print("LISTENING", host.status()["socket"] == str(host.socket_path), host.socket_path.exists())
    print("BEFORE", "aiohttp" in sys.modules, host.server is not None)
    if connect:
        client = HostClient.for_db(db)
        health = await client.health()
        resp = await client.send("/host status", "probe")
        await client.close()
        print("ANSWERED", health["pid"] == os.getpid(), resp["status"])
        print("AFTER", "aiohttp" in sys.modules, host.server is not None)
    await host.close()
    print("CLOSED", host.socket_path.exists())

asyncio.run(main(sys.argv[1], sys.argv[2] == "connect"))
"""


def test_the_first_connection_loads_the_server_and_is_answered(tmp_path: Path) -> None:
    out = run_python(DOOR_PROBE, str(tmp_path / "d.db"), "connect")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert "LISTENING True True" in lines, out.stdout
    assert "BEFORE False False" in lines, out.stdout  # listening, nothing of the server loaded
    assert "ANSWERED True success" in lines, out.stdout
    assert "AFTER True True" in lines, out.stdout
    assert "CLOSED False" in lines, out.stdout


def test_a_host_nobody_connects_to_never_loads_the_server(tmp_path: Path) -> None:
    out = run_python(DOOR_PROBE, str(tmp_path / "d.db"), "alone")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert "LISTENING True True" in lines, out.stdout
    assert "BEFORE False False" in lines, out.stdout
    assert not any(ln.startswith("AFTER") for ln in lines)
    assert "CLOSED False" in lines, out.stdout  # the socket file went with the host


PARTS_PROBE = """
import asyncio, sys
from core.config import Config
from core.host.host import Host
from core.session import open_sim

def loaded():
    return [m for m in ("core.commands", "core.incidents.manager", "core.host.language") if m in sys.modules]

async def main(db, detecting):
    async def opener():
        engine = await open_sim(db, Config())
        return engine, engine.runtime
    host = await Host.open_with(db, opener, kind="sim", create=True, speed=0, incidents=detecting == "detect")
    print("OPENED", host.parts.made is not None, loaded())
    async with host.lock:
        await host.beat(0.1)  # a tick of the pacing loop: nothing to pump without a pipeline
    resp = await host.execute("/host status", "probe")
    print("COMMAND", resp["status"], host.parts.made is not None, len(host.manager.detectors) > 0)
    await host.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_host_that_detects_nothing_makes_its_language_at_the_first_command(tmp_path: Path) -> None:
    out = run_python(PARTS_PROBE, str(tmp_path / "p.db"), "no")
    assert out.returncode == 0, out.stderr
    assert "OPENED False []" in out.stdout, out.stdout  # nothing of the language or the pipeline loaded
    assert "COMMAND success True False" in out.stdout, out.stdout  # made for the command, with no detector


def test_a_host_that_detects_makes_its_pipeline_with_every_detector_at_once(tmp_path: Path) -> None:
    out = run_python(PARTS_PROBE, str(tmp_path / "p.db"), "detect")
    assert out.returncode == 0, out.stderr
    assert "OPENED True ['core.commands', 'core.incidents.manager', 'core.host.language']" in out.stdout, out.stdout
    assert "COMMAND success True True" in out.stdout, out.stdout


async def test_a_plan_left_running_is_advanced_by_a_host_that_detects_nothing(tmp_path: Path) -> None:
    """A previous host left a plan waiting for approval: the next host makes its pipeline
    at once (its pacing advances the plan), detecting or not."""
    from core.config import Config
    from core.host.host import Host
    from core.incidents.drills import start_drill
    from core.session import open_sim

    from .conftest import drill_until

    db = tmp_path / "plan.db"
    eng = await open_sim(db, seed=0, demo=True)
    try:
        drill = start_drill(eng, "agent-cascade", approve="manual", warmup_s=300)
        await drill_until(drill, lambda: drill.plan() is not None, "a plan proposed", 4000.0)
    finally:
        await eng.close()

    async def opener() -> Any:
        engine = await open_sim(db, Config())
        return engine, engine.runtime

    host = await Host.open_with(db, opener, kind="sim", create=True, speed=0, incidents=False)
    try:
        assert host.parts.made is not None
        assert host.manager.detectors == []
    finally:
        await host.close()

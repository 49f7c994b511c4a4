"""A command line that names its verb loads only that verb's module (each verb imports
what it runs; all of them cost about a second of CPU per start); one that names none
still knows every verb."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_python

PROBE = """
import sys
from opsdeck.cli import main
code = main(sys.argv[1:])
loaded = sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('opsdeck.subcommands.'))
print('LOADED', ','.join(loaded), 'EXIT', code)
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return run_python(PROBE, *argv)


def test_a_named_verb_loads_only_its_module(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    out = _run("--config", str(tmp_path / "missing.toml"), "verify", "--db", str(db))
    assert "missing.toml" in out.stderr  # the global option before the verb was still read
    out = _run("verify", "--db", str(db))
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("LOADED"))
    assert line.split()[1] == "verify", line
    assert not db.exists()


def test_a_command_line_naming_no_known_verb_knows_every_verb() -> None:
    out = _run("nosuch")
    assert out.returncode == 2
    for verb in ("console", "serve", "exec", "verify", "drill", "web"):
        assert f"'{verb}'" in out.stderr


def test_the_help_loads_no_engine_no_pydantic_no_aiohttp() -> None:
    """`opsdeck --help` builds every verb's parser: each verb imports what it runs when
    it runs, so the help costs a Python start, not a second."""
    probe = (
        "import sys\n"
        "from opsdeck.cli import build_parser\n"
        "assert 'drill' in build_parser().format_help()\n"
        "heavy = {'aiohttp', 'pydantic', 'core.engine', 'core.store', 'core.events', 'core.commands', 'textual'}\n"
        "print('HEAVY', sorted(m for m in sys.modules if m in heavy))\n"
    )
    out = run_python(probe)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_run_loads_no_event_loop_for_its_help_or_a_bad_file_but_does_to_run(tmp_path: Path) -> None:
    """`opsdeck run --help` and a file with problems end before any event loop (asyncio
    and the ssl module it imports: a tenth of a cold start); a file that runs loads it."""
    probe = (
        "import sys\n"
        "from opsdeck.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "print('ASYNCIO', 'asyncio' in sys.modules, 'EXIT', code)\n"
    )
    assert "ASYNCIO False EXIT 0" in run_python(probe, "run", "--help").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[workflows]]\nid = "w"\n')
    out = run_python(probe, "run", str(bad), "--db", str(tmp_path / "r.db"), "--headless")
    assert "ASYNCIO False EXIT 2" in out.stdout, out.stdout + out.stderr
    assert "problem" in out.stderr and not (tmp_path / "r.db").exists()
    good = tmp_path / "good.toml"
    good.write_text(
        '[[pools]]\nname = "p"\nspecializations = ["s"]\nsize = 1\n[[workflows]]\nid = "w"\n'
        '  [[workflows.phases]]\n  name = "x"\n    [[workflows.phases.tasks]]\n    id = "t"\n'
        '    command = "true"\n    specialization = "s"\n'
    )
    out = run_python(probe, "run", str(good), "--db", str(tmp_path / "g.db"), "--headless", "--quiet")
    assert "ASYNCIO True EXIT 0" in out.stdout, out.stdout + out.stderr


async def test_exec_against_a_live_host_loads_no_aiohttp(tmp_path: Path) -> None:
    """`opsdeck exec` sends its command over the standard library's HTTP: aiohttp's client
    (about 0.3 s of CPU to import) is not loaded, nor the engine. The command did reach the
    host (its pid in the answer; in-process it would be refused as NO_HOST)."""
    from core.config import Config
    from core.host.host import Host

    host = await Host.open_sim(tmp_path / "live.db", Config(), demo=True, create=True, speed=0)
    await host.serve()
    probe = (
        "import sys\n"
        "from opsdeck.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "heavy = {'aiohttp', 'pydantic', 'core.engine', 'core.commands', 'core.session'}\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy), 'EXIT', code)\n"
    )
    try:
        out = await asyncio.to_thread(run_python, probe, "exec", "--db", str(tmp_path / "live.db"), "/host status")
    finally:
        await host.close()
    assert out.returncode == 0, out.stderr
    assert f"host pid {os.getpid()}" in out.stdout, out.stdout
    assert "HEAVY [] EXIT 0" in out.stdout, out.stdout


async def test_events_following_a_live_host_loads_no_aiohttp(tmp_path: Path) -> None:
    """`opsdeck events --follow` takes the host's stream over the standard library too: the
    event it prints came from the host (made after the follower said it follows the host)."""
    import sys

    from core.config import Config
    from core.host.host import Host

    from .conftest import REPO

    db = tmp_path / "live.db"
    host = await Host.open_sim(db, Config(), demo=True, create=True, speed=0)
    await host.serve()
    probe = (
        "import sys\n"
        "from opsdeck.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('AIOHTTP', 'aiohttp' in sys.modules, 'EXIT', code)\n"
    )
    argv = ["events", "--db", str(db), "--follow", "--limit", "1", "--since", str(host.engine.state.seq)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", probe, *argv, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        said = await asyncio.wait_for(proc.stderr.readline(), 120)
        assert b"following the live host" in said, said
        await host.execute("/host status", "probe")
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await host.close()
    assert proc.returncode == 0
    assert b"COMMAND_EXECUTED" in out and b"/host status" in out, out
    assert b"AIOHTTP False" in out and b"EXIT 0" in out, out


EXIT_PROBE = """
import atexit, gc, sys
from opsdeck import cli
cli.main = lambda argv=None: 3  # the verb's outcome, whatever it is
atexit.register(lambda: print('FROZEN', gc.get_freeze_count()))
before = gc.get_freeze_count()
if sys.argv[1] == 'main':
    sys.exit(cli.main())
print('BEFORE', before)
sys.exit(cli.entry())
"""


def test_the_program_exits_with_its_heap_frozen_and_main_alone_freezes_nothing() -> None:
    """``entry`` (``python -m opsdeck``, the script) freezes the heap before the interpreter's
    last collection and passes the exit code on; ``main``, which tests and benches call in
    their own process, leaves the collector as it was."""
    out = run_python(EXIT_PROBE, "entry")
    assert out.returncode == 3, out.stderr
    before = int(out.stdout.split("BEFORE")[1].split()[0])
    frozen = int(out.stdout.split("FROZEN")[1].split()[0])
    assert frozen > before
    out = run_python(EXIT_PROBE, "main")
    assert out.returncode == 3, out.stderr
    assert out.stdout.split() == ["FROZEN", "0"]


async def test_a_host_whose_endpoint_is_imported_serves_without_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control endpoint imported (by a host served earlier in the process)
    before ``opsdeck run`` serves: serving then hands no import to a worker thread."""
    from core.config import Config
    from core.host import host as host_module
    from core.host.host import Host
    from core.host.parts import import_server

    import_server()
    hopped: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        hopped.append(fn)
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(host_module.asyncio, "to_thread", counted)
    host = await Host.open_sim(tmp_path / "s.db", Config(), create=True, speed=0)
    try:
        await host.serve()
        assert host.server is not None and host.socket_path.exists()
        assert import_server not in hopped, "the loaded endpoint was imported again in a worker thread"
    finally:
        await host.close()

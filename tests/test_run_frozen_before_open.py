"""``opsdeck run --headless`` freezes its modules, config and file before its engine opens
(:func:`core.collector.freeze_loaded`): the full collection before the open walks only
what was made since. A process that did not ask for it (an engine opened directly) is
collected whole, as before."""

from __future__ import annotations

import gc
from pathlib import Path

from core.runtimes import launching
from opsdeck import cli

from .conftest import run_python
from .local_harness import task_toml, workflow_toml

PROBE = """
import gc, runpy, sys
import core.engine.facade as facade

settle = facade.settle_before_open
import core.collector as collector
passes = []
gc.callbacks.append(lambda phase, info: passes.append(info["generation"]) if phase == "start" else None)
hold = collector.hold_for_start

def held():
    passes.clear()  # counted from the verb's start hold on
    hold()

collector.hold_for_start = held
freeze = collector.freeze_loaded

def frozen():
    print("PASSES", len(passes), "HELD", not gc.isenabled(), flush=True)
    freeze()
    print("ENABLED", gc.isenabled(), flush=True)

collector.freeze_loaded = frozen

def told():
    print("FROZEN", gc.get_freeze_count() > 0, "WALKED", len(gc.get_objects()), flush=True)
    settle()

facade.settle_before_open = told
if sys.argv[1] == "run":
    sys.argv = ["opsdeck", *sys.argv[1:]]
    runpy.run_module("opsdeck", run_name="__main__", alter_sys=True)
else:
    import asyncio
    from core.engine import Engine

    async def main():
        engine = await Engine.open(sys.argv[2])
        await engine.close()

    asyncio.run(main())
"""

POOL = '\n[runtime]\nheartbeat_s = 0.5\n[[pools]]\nname = "p"\nspecializations = ["s"]\nsize = 1\n'


def test_a_headless_run_opens_its_engine_with_its_modules_frozen(tmp_path: Path) -> None:
    f = tmp_path / "one.toml"
    f.write_text(POOL + workflow_toml("one", task_toml("t", "true")))
    out = run_python(PROBE, "run", str(f), "--headless", "--quiet", "--db", str(tmp_path / "r.db"))
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("FROZEN"))
    assert line.split()[1] == "True", line
    # Held off from the command line read to the freeze (84 young and 7 middle passes
    # before, ~15 ms of CPU), and running again once the modules and the file are frozen.
    assert "PASSES 0 HELD True" in out.stdout and "ENABLED True" in out.stdout, out.stdout


def test_a_run_that_stops_before_its_engine_leaves_the_collector_running(tmp_path: Path) -> None:
    """The must-not: a run refused before anything starts (its config, its file) does not
    leave the collector held off in the process that called it."""
    bad = tmp_path / "bad.toml"
    bad.write_text(POOL + workflow_toml("one", task_toml("t", "true")) + "[[workflows.phases.tasks]]\nid = 3\n")
    cfg = tmp_path / "bad-config.toml"
    cfg.write_text("[capacity]\nagents = -1\n")
    for db, argv in (
        ("a.db", ["run", str(bad), "--headless", "--db", str(tmp_path / "a.db")]),
        (
            "b.db",
            ["--config", str(cfg), "run", str(tmp_path / "none.toml"), "--headless", "--db", str(tmp_path / "b.db")],
        ),
    ):
        try:
            assert cli.main(argv) == 2
            assert gc.isenabled(), argv
        finally:  # the launcher started early: ended with its channel, as at a real process's exit
            early = launching.take_early(launching.run_dir_for(tmp_path / db))
            if early is not None:
                early[1].close()
                early[0].wait(timeout=30)
        assert not (tmp_path / db).exists()


def test_an_engine_opened_directly_is_collected_whole_before_it_opens(tmp_path: Path) -> None:
    out = run_python(PROBE, "open", str(tmp_path / "e.db"))
    assert out.returncode == 0, out.stderr
    assert "FROZEN False" in out.stdout, out.stdout

"""``opsdeck run --headless`` freezes its modules, config and file before its engine opens
(:func:`core.collector.freeze_loaded`): the full collection before the open walks only
what was made since. A process that did not ask for it (an engine opened directly) is
collected whole, as before."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_python
from .local_harness import task_toml, workflow_toml

PROBE = """
import gc, runpy, sys
import core.engine.facade as facade

settle = facade.settle_before_open

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


def test_an_engine_opened_directly_is_collected_whole_before_it_opens(tmp_path: Path) -> None:
    out = run_python(PROBE, "open", str(tmp_path / "e.db"))
    assert out.returncode == 0, out.stderr
    assert "FROZEN False" in out.stdout, out.stdout

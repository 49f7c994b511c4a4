"""The console draws its first frame before it imports the host's modules (the engine,
the store, the command language, the incident pipeline: about half of its imports);
they load in a worker thread when the link opens (tui/link_open.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, run_python

DEFERRED = ("core.host.host", "core.host.link", "core.commands", "core.engine", "core.store", "core.incidents.kinds")


def test_importing_the_console_leaves_the_host_modules_for_later() -> None:
    probe = f"import sys, tui.app\nprint(','.join(m for m in {DEFERRED!r} if m in sys.modules))\n"
    out = run_python(probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_opsdeck_demo_reaches_the_console_without_the_host_modules(tmp_path: Path) -> None:
    """The command line's own path to the console (``opsdeck demo``: parsing, the config,
    the database check) imports none of the host's modules before the app runs."""
    probe = (
        "import sys, tui.app\n"
        "def run(self, *a, **k):\n"
        f"    print(','.join(m for m in {DEFERRED!r} if m in sys.modules) or 'none')\n"
        "tui.app.OpsdeckApp.run = run\n"
        "from opsdeck.cli import main\n"
        f"sys.exit(main(['demo', '--db', {str(tmp_path / 'demo.db')!r}]))\n"
    )
    out = run_python(probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_a_command_line_without_a_verb_loads_only_the_console() -> None:
    from opsdeck.cli import _named_verb

    assert _named_verb([]) == "console"
    assert _named_verb(["--config", "x.toml", "--trust-owner"]) == "console"
    assert _named_verb(["demo", "--db", "x.db"]) == "demo"
    assert _named_verb(["--help"]) is None  # the help lists every verb
    assert _named_verb(["nosuch"]) is None  # so does the error naming the known ones


def test_top_level_options_without_a_verb_open_the_console(tmp_path: Path) -> None:
    probe = (
        "import sys, tui.app\n"
        "tui.app.OpsdeckApp.run = lambda self, *a, **k: print('console')\n"
        "from opsdeck.cli import main\n"
        "sys.exit(main(['--trust-owner']))\n"
    )
    (tmp_path / "opsdeck").mkdir(mode=0o700)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "console", out.stderr

"""``opsdeck run`` starts the agent hosts' launcher as soon as its command line is read,
before its config and file are loaded (:func:`core.runtimes.launching.start_early`):
nothing is written until the file has passed its checks (then the run directory is made
and the launcher's log named in it), and a run that stops before never made one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from core.runtimes import launching
from core.runtimes.launching import run_dir_for

from .conftest import opsdeck_cmd, wait_for
from .local_harness import task_toml, workflow_toml

POOL = '\n[runtime]\nheartbeat_s = 0.5\n[[pools]]\nname = "p"\nspecializations = ["s"]\nsize = 1\n'


def _launchers_of(run_dir: Path) -> list[psutil.Process]:
    """Live launcher processes naming ``run_dir`` on their command line."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            line = " ".join(p.info["cmdline"] or ())
            if p.info["status"] != psutil.STATUS_ZOMBIE and "core.runtimes.zygote" in line and str(run_dir) in line:
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_the_launcher_starts_before_the_config_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.config
    from opsdeck.cli import main

    order: list[str] = []
    started = launching.start_early
    loaded = core.config.load_config
    monkeypatch.setattr(launching, "start_early", lambda d: (order.append("launcher"), started(d)))
    monkeypatch.setattr(core.config, "load_config", lambda p=None: (order.append("config"), loaded(p))[1])
    f = tmp_path / "one.toml"
    f.write_text(POOL + workflow_toml("one", task_toml("t", "true")))
    cfg = tmp_path / "c.toml"
    cfg.write_text("[capacity]\nagents = 4\n")
    assert main(["--config", str(cfg), "run", str(f), "--headless", "--db", str(tmp_path / "r.db")]) == 0
    assert order[0] == "launcher" and "config" in order, order
    # Started with its output dropped: the log exists because the run, once checked, named it.
    assert (run_dir_for(tmp_path / "r.db") / launching.LAUNCHER_LOG).is_file()


def test_a_file_with_problems_leaves_no_run_directory_and_no_launcher(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(POOL + workflow_toml("bad", task_toml("t", "true", specialization="nobody-has-this")))
    db = tmp_path / "r.db"
    r = subprocess.run(opsdeck_cmd("run", str(f), "--headless", "--db", str(db)), capture_output=True, text=True)
    assert r.returncode == 2 and "nothing was started" in r.stderr, r.stderr
    run_dir = run_dir_for(db)
    wait_for(lambda: not _launchers_of(run_dir), "the early launcher exits with the console")
    assert not run_dir.exists() and not db.exists()

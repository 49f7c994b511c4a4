"""A whole ``opsdeck run --headless`` leaves no process of its own behind, whatever
ended its hosts meanwhile.

Before, a run that exited 0 could leave agent hosts running, each waiting out its
orphan timeout (an hour): a host the sampler could not read was taken for gone and
replaced while its process ran, and the shutdown skipped dead-marked hosts; and a
host the launcher forked after the console had closed its channel (the run ended while
hosts were still starting) was known to no one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from core.private import socket_path
from core.runtimes.local import run_dir_for

from .conftest import REPO
from .local_harness import header, task_toml, workflow_toml


def workflow(agents: int, sleep: int) -> str:
    """A pool of ``agents`` and one workflow of two tasks, each sleeping ``sleep`` seconds."""
    tasks = [task_toml(t, f"sleep {sleep}", "shell", memory_gb=0.25, cpu=0.1) for t in ("a", "b")]
    allocation = {"cpu_cores": 2, "memory_gb": 1, "agents": agents}
    pools = f'[[pools]]\nname = "workers"\nspecializations = ["shell"]\nsize = {agents}\n'
    return header(heartbeat=0.5, grace=1.0, pools=pools, sample=0.2) + workflow_toml(
        "w", *tasks, phase="work", priority=60, allocation=allocation
    )


# The console with its sampler failing for every host (as a /proc read of a host still
# starting can): each host is then taken for gone while its process runs.
BLIND_SAMPLER = (
    "import runpy, sys\n"
    "from core.runtimes import sampler\n"
    "sampler.Sampler.trees = lambda self, roots: {name: None for name in roots}\n"
    "sys.argv = ['opsdeck', *sys.argv[1:]]\n"
    "runpy.run_module('opsdeck', run_name='__main__', alter_sys=True)\n"
)

# A launcher slow to fork (a loaded machine): the run's one short task ends while most
# hosts are still being forked.
SLOW_FORK = (
    "import os, time\n"
    "_fork = os.fork\n"
    "def _slow_fork():\n"
    "    time.sleep(0.4)\n"
    "    return _fork()\n"
    "os.fork = _slow_fork\n"
)


def _of_run(run_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line names the run's private directory (its hosts,
    forked by its launcher or started on their own, and the launcher)."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            if any(str(run_dir) in arg for arg in p.info["cmdline"] or ()):
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "agents", "sleep"), [("blind_sampler", 2, 4), ("slow_launcher", 12, 0), ("none", 2, 0)]
)
def test_a_run_leaves_no_host_running(
    tmp_path: Path, cli_env: dict[str, str], fault: str, agents: int, sleep: int
) -> None:
    db = tmp_path / "run.db"
    wf = tmp_path / "w.toml"
    wf.write_text(workflow(agents, sleep))
    env = dict(cli_env)
    prefix = [sys.executable, "-m", "opsdeck"]
    if fault == "blind_sampler":
        prefix = [sys.executable, "-c", BLIND_SAMPLER]
    elif fault == "slow_launcher":  # sitecustomize: in the launcher (and the console, which never forks)
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_FORK)
        env["PYTHONPATH"] = str(tmp_path / "site")
    out = subprocess.run(
        [*prefix, "run", str(wf), "--db", str(db), "--headless"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=240,
    )
    left = _of_run(run_dir_for(db))
    try:
        assert left == [], f"left running: {[(p.pid, p.info['cmdline']) for p in left]}\n{out.stderr}"
        assert out.returncode == 0, out.stderr  # every host ended: the run says nothing was left
        assert "could not end" not in out.stderr
        sockets = [socket_path(run_dir_for(db), f"agent_{i:03}.sock") for i in range(1, agents + 1)]
        assert [s for s in sockets if s.exists()] == []  # each host's socket removed, by it or by the shutdown
        if fault == "slow_launcher":  # the hosts still to be forked when the run ended were not
            forked = list(run_dir_for(db).glob("agent_*.log"))
            assert 0 < len(forked) < agents, [p.name for p in forked]
    finally:
        for p in left:
            p.kill()


def test_the_json_summary_says_what_the_exit_code_says() -> None:
    """A host left running makes the run exit 1; its JSON summary is then not ok and
    names the host (it said ok with every workflow completed)."""
    from opsdeck.subcommands.run import run_summary

    done = {"w": "completed"}
    left = run_summary(Path("x.db"), done, False, ["agent_001 (pid 4242)"])
    assert left["ok"] is False and left["hosts_left_running"] == ["agent_001 (pid 4242)"]
    clean = run_summary(Path("x.db"), done, False, [])
    assert clean["ok"] is True and clean["hosts_left_running"] == []
    assert run_summary(Path("x.db"), {"w": "failed"}, False, [])["ok"] is False

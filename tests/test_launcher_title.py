"""The agent hosts' launcher without setproctitle (an environment installed before it was a
dependency): its forked hosts keep its command line in ``ps``, and its log says why, once,
whether the log was named at its start or later (a launcher started early); with
setproctitle it says nothing of it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.runtimes.zygote import UNTITLED

from .conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]


def _launcher(tmp_path: Path, hidden: bool, early: bool) -> str:
    """Run the launcher until its channel closes (after a log request when ``early``):
    what it wrote where its output went (stderr, or the log it was told)."""
    path = [str(ROOT)]
    if hidden:  # an import of setproctitle fails, as where it is not installed
        shadow = tmp_path / "shadow" / "setproctitle"
        shadow.mkdir(parents=True)
        (shadow / "__init__.py").write_text("raise ImportError('not installed here')\n")
        path.insert(0, str(shadow.parent))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log = tmp_path / "launcher.log"
    with ours:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.runtimes.zygote", "--fd", str(theirs.fileno()), "--run-dir", str(tmp_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if early else subprocess.PIPE,
            pass_fds=[theirs.fileno()],
            env=env,
        )
        theirs.close()
        if early:
            ours.sendall((json.dumps({"op": "log", "path": str(log)}) + "\n").encode())
            wait_for(log.exists, "the launcher to take its log")  # a request read after the close is not carried out
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return log.read_text() if early else err.decode()


@pytest.mark.parametrize("early", [False, True], ids=["log-from-start", "log-named-later"])
def test_a_launcher_without_setproctitle_says_so_once(tmp_path: Path, early: bool) -> None:
    said = _launcher(tmp_path, hidden=True, early=early)
    assert said.count(UNTITLED) == 1, said


def test_a_launcher_with_setproctitle_says_nothing_of_it(tmp_path: Path) -> None:
    """The must-not: where setproctitle is installed (a dependency), nothing is said."""
    assert "setproctitle" not in _launcher(tmp_path, hidden=False, early=True)
    assert "setproctitle" not in _launcher(tmp_path, hidden=False, early=False)

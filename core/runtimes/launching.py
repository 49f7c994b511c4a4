"""Starting the agent hosts' launcher (:mod:`.zygote`) as a process, and starting it early.

Light to import (no event loop, no pydantic): ``opsdeck run`` starts the launcher as soon
as its command line is read (:func:`start_early`), so that the launcher's own start, an
interpreter importing the agent host, overlaps the console's loading of its config and
workflow file instead of following it. Nothing is written until the file has passed its
checks (:func:`keep_early` then makes the run directory and names the launcher's log in
it); a run that stops before leaves nothing, and its launcher exits with it (it sees its
channel close). The console's side of the launcher is :mod:`.host_launcher`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..private import PrivateError, open_private, private_dir

LAUNCHER_LOG = "launcher.log"


def run_dir_for(db: str | Path) -> Path:
    """Sockets, host logs and the run's secret live next to the database: ``<db>.agents/`` (0700)."""
    p = Path(db).resolve()
    return p.parent / f"{p.name}.agents"


ROOT = str(Path(__file__).resolve().parents[2])
"""The directory ``core`` was imported from (resolved once: the path's every part is looked up)."""


def host_env() -> dict[str, str]:
    """A host imports ``core`` from wherever this console imported it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_module(module: str, args: list[str], log: Path | None, **popen: Any) -> subprocess.Popen[bytes]:
    """``python -m module args`` as a host process is started: stdin /dev/null, stdout and
    stderr its private log (None: /dev/null), the console's directory and :func:`host_env`."""
    fd = open_private(log) if log is not None else os.open(os.devnull, os.O_WRONLY)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd=os.getcwd(),
            env=host_env(),
            **popen,
        )
    finally:
        os.close(fd)


def start_launcher(run_dir: Path, log: bool = True) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """``python -m core.runtimes.zygote`` for ``run_dir`` and the console's end of its
    channel (OSError if it cannot start). Without ``log`` its output is dropped until it
    is told its log's name (:func:`log_request`): the run directory need not exist yet."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        popen = start_module(
            "core.runtimes.zygote",
            ["--fd", str(theirs.fileno()), "--run-dir", str(run_dir)],
            run_dir / LAUNCHER_LOG if log else None,
            pass_fds=[theirs.fileno()],
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return popen, ours


def log_request(run_dir: Path) -> bytes:
    """The request that has the launcher write its output to its log in ``run_dir``."""
    return (json.dumps({"op": "log", "path": str(run_dir / LAUNCHER_LOG)}) + "\n").encode()


_STARTED_EARLY: dict[str, tuple[subprocess.Popen[bytes], socket.socket]] = {}
"""Launchers started before their runtime was made, by run directory."""


def start_early(run_dir: Path) -> None:
    """Start the launcher of ``run_dir`` now, before any event loop. A failure here only
    means the launcher starts later, with the first host."""
    try:
        _STARTED_EARLY[os.path.abspath(run_dir)] = start_launcher(run_dir, log=False)
    except (OSError, PrivateError):
        pass


def keep_early(run_dir: Path) -> None:
    """The run goes ahead: make the run directory and name the early launcher's log in it.
    If the directory cannot be made the launcher is ended (the runtime's start says why)."""
    started = _STARTED_EARLY.get(os.path.abspath(run_dir))
    if started is None:
        return
    popen, channel = started
    try:
        private_dir(run_dir)
        channel.sendall(log_request(run_dir))  # read before any host is asked for: in order
    except (OSError, PrivateError):
        del _STARTED_EARLY[os.path.abspath(run_dir)]
        channel.close()
        popen.kill()
        popen.wait()


def take_early(run_dir: Path) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
    """The launcher started early for ``run_dir`` (and its channel), if one was."""
    return _STARTED_EARLY.pop(os.path.abspath(run_dir), None)

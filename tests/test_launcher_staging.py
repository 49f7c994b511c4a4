"""The launcher forks agent hosts a few at a time and says when each listens.

A host is forked while fewer than ``STARTING_MAX`` forked ones are still starting (not
listening yet); a place frees when its host listens, ends, or has been starting for
``START_SLOT_S``. Its ``listening`` word comes once its socket listens, so that the console
connects then (a connection tried before is refused, and tried again only later); a host
that never listens gets no such word. The console tries no connection the launcher has not
said may be answered.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.runtimes import handshake, local_hosts
from core.runtimes.zygote import START_SLOT_S, STARTING_MAX

from .local_harness import drive, header, open_text, task_toml, workflow_toml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


class Launcher:
    """``python -m core.runtimes.zygote`` on a socketpair, its answers read with the time each arrived."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.runtimes.zygote", "--fd", str(theirs.fileno()), "--run-dir", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        theirs.close()
        self.sock = ours
        self.sock.settimeout(30)
        self.buf = b""
        self.got: list[tuple[float, dict[str, Any]]] = []

    def spawn(self, ident: int, agent: str, secret: Path, sock_dir: Path) -> None:
        argv = ["--agent", agent, "--socket", str(sock_dir / f"{agent}.sock"), "--secret-file", str(secret)]
        req = {"op": "spawn", "id": ident, "argv": [*argv, "--orphan", "60"], "log": str(self.run_dir / f"{agent}.log")}
        req |= {"cwd": str(self.run_dir), "env": dict(os.environ)}
        self.sock.sendall((json.dumps(req) + "\n").encode())

    def next(self) -> dict[str, Any]:
        """The next answer (waits for it; the socket's timeout fails the test)."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "the launcher closed its channel"
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        self.got.append((time.monotonic(), msg))
        return msg

    def until(self, t: str, pid: int | None = None, ident: int | None = None) -> dict[str, Any]:
        """Read answers until one of type ``t`` (for ``pid`` / ``ident``) arrives."""
        for _, msg in self.got:
            if msg["t"] == t and pid in (None, msg.get("pid")) and ident in (None, msg.get("id")):
                return msg
        while True:
            msg = self.next()
            if msg["t"] == t and pid in (None, msg.get("pid")) and ident in (None, msg.get("id")):
                return msg

    def close(self) -> None:
        pids = [m["pid"] for _, m in self.got if m["t"] == "spawned"]
        self.sock.close()
        self.proc.wait(timeout=30)
        for pid in pids:  # the hosts live on in their sessions: ended here
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _secret(path: Path) -> Path:
    path.write_bytes(os.urandom(32))
    path.chmod(0o600)
    return path


def _connects(address: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(address)
        except OSError:
            return False
        return True


def test_hosts_start_a_few_at_a_time_and_each_is_said_to_listen_once_it_does(tmp_path: Path) -> None:
    """``STARTING_MAX`` hosts that cannot get past their start (each waits to read its
    secret from a FIFO nobody writes yet) hold the places: the next host is forked only
    once ``START_SLOT_S`` passed. A host said to listen is connected to at once; a host
    still starting gets no such word, and one that cannot listen only its exit."""
    socks = tmp_path / "s"
    socks.mkdir(mode=0o700)
    secret = _secret(tmp_path / "secret")
    fifos = []
    for i in range(STARTING_MAX):
        fifos.append(tmp_path / f"fifo{i}")
        os.mkfifo(fifos[-1], 0o600)
    launcher = Launcher(tmp_path)
    try:
        asked = time.monotonic()
        for i, fifo in enumerate(fifos):
            launcher.spawn(i, f"stuck{i}", fifo, socks)
        launcher.spawn(100, "good", secret, socks)
        launcher.spawn(101, "nowhere", secret, tmp_path / "secret")  # its socket's directory is a file
        good = launcher.until("spawned", ident=100)
        arrived = next(t for t, m in launcher.got if m is good)
        assert arrived - asked >= START_SLOT_S, "forked while the stuck hosts still held every place"
        said = launcher.until("listening", pid=good["pid"])
        assert _connects(str(socks / "good.sock")), said
        nowhere = launcher.until("spawned", ident=101)
        launcher.until("exited", pid=nowhere["pid"])
        # One stuck host goes on once its secret arrives: said to listen then, not before.
        stuck = launcher.until("spawned", ident=0)
        assert not _connects(str(socks / "stuck0.sock"))
        fd = os.open(fifos[0], os.O_WRONLY)
        os.write(fd, secret.read_bytes())
        os.close(fd)
        launcher.until("listening", pid=stuck["pid"])
        assert _connects(str(socks / "stuck0.sock"))
        told = {m["pid"] for _, m in launcher.got if m["t"] == "listening"}
        assert nowhere["pid"] not in told  # the must-not: no word for a host that never listened
        others = {m["pid"] for _, m in launcher.got if m["t"] == "spawned" and m["id"] in range(1, STARTING_MAX)}
        assert not told & others, "said to listen while still reading its secret"
    finally:
        for fifo in fifos[1:]:  # let the stuck hosts past their open, so that they can be ended
            fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
            os.close(fd)
        launcher.close()


async def test_the_console_tries_no_connection_before_the_launcher_says_the_host_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection the console tries to a host its launcher forked is answered: none
    is refused for being tried while the host still starts (the launcher going, and the
    hosts then started on their own and tried until they answer: test_local_launcher).
    A host's CPU time, what a start that takes long is judged by, is read from its first
    refusal on: none is read for hosts that answer at once (test_local_slow_start: one
    that does not answer is judged so)."""
    refused: list[str] = []
    tried: list[str] = []
    answered: list[str] = []
    connect = handshake.console_connect

    async def counting(address: str, *args: Any, **kw: Any) -> Any:
        tried.append(address)
        try:
            got = await connect(address, *args, **kw)
        except OSError:
            refused.append(address)
            raise
        answered.append(address)
        return got

    monkeypatch.setattr(local_hosts, "console_connect", counting)
    read: list[str] = []
    cpu_s = local_hosts.LocalLinks.cpu_s

    def reading(links: local_hosts.LocalLinks, h: local_hosts.ProcessHost) -> float | None:
        read.append(h.agent)
        return cpu_s(links, h)

    monkeypatch.setattr(local_hosts.LocalLinks, "cpu_s", reading)
    tasks = [task_toml(f"t{i}", ["sleep", "30"], "shell") for i in range(4)]  # the workflow lasts
    pool = '[[pools]]\nname = "workers"\nspecializations = ["shell"]\nsize = 4\n'
    text = header(pools=pool) + workflow_toml(
        "w", *tasks, phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 4}
    )
    engine, runtime, _ = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await drive(engine, lambda: len(set(answered)) == 4, timeout=60, what=lambda: f"tried {tried}")
        assert not refused, f"tried before the host listened: {refused}"
        assert not read, f"CPU time read for hosts that answered at once: {read}"
    finally:
        await runtime.shutdown()
        await engine.close()

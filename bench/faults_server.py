"""Fault figures of the host's server, its clients, agent output and web consoles.

Used by ``bench/faults.py`` (run there); each case reports what it attempted, how many
attempts the system held (answered as it should, within its bounds), acknowledged
events lost (counted from the log), tracebacks printed, and the peak RSS of the
process under test (psutil, sampled every 50 ms).

* 200 stalled followers of a host replaying its log (the host's stall time 5 s);
* a 1M-character command, over the unix socket;
* a SIGSTOPped host: ``exec --timeout 3`` and ``events --follow``;
* a task printing a 2 MiB line on real agents (``opsdeck run --headless``);
* websockets of ``opsdeck web`` from a foreign Origin, and its old ``/ws?token=`` route;
* a task whose ``setsid`` grandchild would outlive it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Case:
    name: str
    attempts: int = 0
    held: int = 0
    lost: int = 0
    tracebacks: int = 0
    peak_rss_mb: float = 0.0
    note: str = ""

    def line(self) -> str:
        return (
            f"{self.name}: attempts {self.attempts}, held {self.held}, lost {self.lost}, "
            f"tracebacks {self.tracebacks}, peak RSS {self.peak_rss_mb:.0f} MB"
            + (f" ({self.note})" if self.note else "")
        )


@dataclass
class Peak:
    """The peak RSS of a process tree, sampled in a thread until stopped."""

    pid: int
    mb: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Peak:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                p = psutil.Process(self.pid)
                rss = sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])
                self.mb = max(self.mb, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def _opsdeck(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "opsdeck", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


def _wait(cond: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


class Served:
    """``opsdeck serve --demo`` in a subprocess, its stderr kept."""

    def __init__(self, work: Path, env: dict[str, str], config: str) -> None:
        self.db = work / "served.db"
        cfg = work / "served.toml"
        cfg.write_text(config)
        self.proc = subprocess.Popen(
            [PY, "-m", "opsdeck", "--config", str(cfg), "serve", "--demo", "--db", str(self.db), "--speed", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not _wait(lambda: any("listening on unix" in ln for ln in self.err), 180):
            raise RuntimeError("the host did not start: " + "".join(self.err[-5:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    @property
    def sock(self) -> str:
        return f"{self.db}.sock"

    def tracebacks(self) -> int:
        return sum("Traceback" in ln for ln in self.err)

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _acknowledged_lost(db: Path, actor: str, acked: int) -> int:
    """Commands of ``actor`` answered success whose COMMAND_EXECUTED is not in the log."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        have = con.execute(
            "SELECT count(*) FROM events WHERE type='COMMAND_EXECUTED' AND actor=? "
            "AND json_extract(data, '$.status')='success'",
            (actor,),
        ).fetchone()[0]
    finally:
        con.close()
    return max(0, acked - have)


def _raw_follower(sock: str, since: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(sock)
    s.sendall(f"GET /v1/events?since={since} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    return s


def host_cases(work: Path, env: dict[str, str], followers: int = 200) -> list[Case]:
    """The cases against one served host: stalled followers, a 1M-character command, SIGSTOP."""
    host = Served(work, env, "[server]\nstall_s = 5\n")
    out: list[Case] = []
    acked: dict[str, int] = {}

    def command(actor: str, text: str, *extra: str) -> subprocess.CompletedProcess[str]:
        r = _opsdeck("exec", "--db", str(host.db), "--actor", actor, *extra, text, env=env)
        if r.returncode == 0:
            acked[actor] = acked.get(actor, 0) + 1
        return r

    try:
        command("bench-setup", "/host advance 1h", "--timeout", "300")
        # -- stalled followers
        c = Case(f"{followers} stalled followers")
        before = psutil.Process(host.proc.pid).memory_info().rss / 2**20
        with Peak(host.proc.pid) as peak:
            socks = [_raw_follower(host.sock) for _ in range(followers)]
            c.attempts = followers
            answered = command("bench-followers", "/host status").returncode == 0

            def dropped() -> int:
                return sum("dropped an event follower" in ln for ln in host.err)

            _wait(lambda: dropped() >= followers, 300)
            for s in socks:
                s.close()
        c.held = min(dropped(), followers) if answered else 0
        c.peak_rss_mb = peak.mb
        c.note = f"held = dropped with a reason while the host kept answering; host RSS {before:.0f} MB before"
        out.append(c)
        # -- 1M-character command
        c = Case("1M-character command")
        with Peak(host.proc.pid) as peak:
            for _ in range(5):
                c.attempts += 1
                t0 = time.monotonic()
                body = json.dumps({"command": "/debug '" + "y" * 1_000_000 + "'", "actor": "bench"}).encode()
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(60)
                s.connect(host.sock)
                s.sendall(
                    b"POST /v1/commands HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
                s.close()
                took = time.monotonic() - t0
                r = command("bench-long", "/host status")
                c.held += b" 400 " in got.split(b"\r\n", 1)[0] and took < 5 and r.returncode == 0
        c.peak_rss_mb = peak.mb
        c.note = "held = refused with a size error (4xx) within 5 s and the host answering after"
        out.append(c)
        # -- SIGSTOPped host
        c = Case("SIGSTOPped host")
        follow = subprocess.Popen(
            [PY, "-m", "opsdeck", "events", "--db", str(host.db), "--follow", "--since", str(10**9)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert follow.stderr is not None
        follow.stderr.readline()
        t0 = time.monotonic()
        command("bench-stopped", "/host status")
        normal = time.monotonic() - t0
        with Peak(host.proc.pid) as peak:
            for _ in range(3):
                c.attempts += 1
                os.kill(host.proc.pid, signal.SIGSTOP)
                t0 = time.monotonic()
                r = _opsdeck("exec", "--db", str(host.db), "--timeout", "3", "/host status", env=env, timeout=120)
                took = time.monotonic() - t0
                named = f"pid {host.proc.pid}" in r.stderr and "stopped" in r.stderr
                os.kill(host.proc.pid, signal.SIGCONT)
                again = command("bench-stopped", "/host status")
                c.held += r.returncode == 1 and named and again.returncode == 0
                c.tracebacks += "Traceback" in r.stderr
                c.note = f"exec --timeout 3 gave up in {took:.1f} s; an exec answered by the host took {normal:.1f} s"
        follow.terminate()
        rest = follow.communicate(timeout=60)[1]
        reported = "stopped" in rest and f"pid {host.proc.pid}" in rest
        c.note += "; events --follow " + ("reported the stopped host" if reported else "did NOT report it")
        c.tracebacks += "Traceback" in rest
        c.peak_rss_mb = peak.mb
        out.append(c)
    finally:
        host.stop()
    for c, actor in zip(out, ("bench-followers", "bench-long", "bench-stopped"), strict=True):
        c.lost = _acknowledged_lost(host.db, actor, acked.get(actor, 0))
    out[0].tracebacks += host.tracebacks()  # the host's stderr, over all three cases
    out[0].note += f"; the host printed {host.tracebacks()} tracebacks over the three host cases"
    return out


CHATTY = (
    "import sys, time\n"
    "sys.stdout.write('A' * (2 * 1024 * 1024) + '\\n'); sys.stdout.flush(); time.sleep(1)\n"
    "for i in range(20000): sys.stdout.write(f'line {i}\\n')\n"
    "print('done')\n"
)
DETACH = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
)


def _toml_list(*argv: str) -> str:
    return "[" + ", ".join(json.dumps(a) for a in argv) + "]"


def _workflow(tasks: list[tuple[str, list[str]]]) -> str:
    head = '[runtime]\nheartbeat_s = 0.5\nsample_s = 0.5\nstop_grace_s = 1.0\n\n[[pools]]\nname = "w"\n'
    head += 'specializations = ["shell"]\nsize = 2\n\n[[workflows]]\nid = "bench"\n'
    head += 'allocation = { cpu_cores = 2, memory_gb = 2, agents = 2 }\n  [[workflows.phases]]\n  name = "p"\n'
    for tid, argv in tasks:
        head += f'    [[workflows.phases.tasks]]\n    id = "{tid}"\n    command = {_toml_list(*argv)}\n'
        head += '    specialization = "shell"\n    retries = 0\n'
    return head


def _run_headless(work: Path, env: dict[str, str], name: str, text: str) -> tuple[int, str, float, float]:
    wf = work / f"{name}.toml"
    wf.write_text(text)
    t0 = time.monotonic()
    p = subprocess.Popen(
        [PY, "-m", "opsdeck", "run", str(wf), "--headless", "--quiet", "--db", str(work / f"{name}.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    with Peak(p.pid) as peak:
        out, err = p.communicate(timeout=600)
    return p.returncode, out + err, time.monotonic() - t0, peak.mb


def agent_cases(work: Path, env: dict[str, str]) -> list[Case]:
    out: list[Case] = []
    c = Case("2 MiB output line")
    rc, text, took, mb = _run_headless(
        work, env, "chatty", _workflow([(f"t{i}", [PY, "-c", CHATTY]) for i in range(3)])
    )
    c.attempts = 3
    files = list((work / "chatty.db.agents").rglob("*.log"))
    whole = sum(1 for f in files if f.stat().st_size >= 2 * 1024 * 1024)
    c.held = whole if rc == 0 else 0
    c.tracebacks = text.count("Traceback")
    c.peak_rss_mb = mb
    c.note = f"run exit {rc} in {took:.0f} s; tasks whose whole output is in their file: {whole}; RSS of the run"
    out.append(c)
    c = Case("setsid grandchild")
    marks = [work / f"gc{i}.pid" for i in range(3)]
    rc, text, took, mb = _run_headless(
        work, env, "detach", _workflow([(f"d{i}", [PY, "-c", DETACH, str(m)]) for i, m in enumerate(marks)])
    )
    c.attempts = 3

    def gone(m: Path) -> bool:
        try:
            return psutil.Process(int(m.read_text())).status() == psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, FileNotFoundError, ValueError):
            return True

    _wait(lambda: all(gone(m) for m in marks), 30)
    c.held = sum(1 for m in marks if m.exists() and gone(m)) if rc == 0 else 0
    for m in marks:  # nothing of the bench left behind either way
        if not gone(m):
            os.kill(int(m.read_text()), signal.SIGKILL)
    c.tracebacks = text.count("Traceback")
    c.peak_rss_mb = mb
    c.note = f"held = grandchild gone once its task ended; run exit {rc}"
    out.append(c)
    return out


def web_cases() -> list[Case]:
    from aiohttp import WSServerHandshakeError
    from aiohttp.test_utils import TestClient, TestServer

    from opsdeck.web import ConsoleServer

    token = "bench-token-0123456789"
    c = Case("foreign Origin websocket")

    async def go() -> None:
        server = ConsoleServer("true", host="127.0.0.1", port=0, token=token, title="bench")
        client = TestClient(TestServer(await server._make_app()))
        await client.start_server()
        try:
            for path in (f"/ws/{token}", f"/ws?token={token}", f"/ws/{token}?width=80"):
                for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
                    c.attempts += 1
                    try:
                        ws = await client.ws_connect(path, headers={"Origin": origin})
                        await ws.close()
                    except WSServerHandshakeError as exc:
                        c.held += exc.status in (403, 404)
            c.held -= len(server.consoles)  # a console started for any of them is a failure
        finally:
            await client.close()

    with Peak(os.getpid()) as peak:
        asyncio.run(go())
    c.peak_rss_mb = peak.mb
    c.note = "held = refused (403, or 404 for the route that is gone) with no console started; RSS of the bench"
    return [c]


def server_faults(work: Path, followers: int = 200) -> list[Case]:
    env = dict(os.environ, OPSDECK_HOME=str(work / "home"))
    (work / "home").mkdir(exist_ok=True)
    return [*host_cases(work, env, followers), *agent_cases(work, env), *web_cases()]

"""A host is known by what it can prove, not by its command line: before a restarted
console adopts or signals a process its ``processes`` row names, the process holding
the row's socket must be the row's pid (``SO_PEERCRED``), know the run's secret and
greet as the row's agent. Every other process is left alone, whatever its name."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from core.models import Agent
from core.private import socket_path
from core.runtimes import adoption as adoption_module
from core.runtimes.adoption import Adoption

from .conftest import wait_for
from .test_local_security import listening, start_host, stop_host

IMPOSTOR = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen()
while True:
    c, _ = s.accept()
    c.sendall(b'{"t":"challenge","nonce":"0123456789abcdef0123456789abcdef"}\\n')
    time.sleep(0.2)
    c.close()
"""
"""Holds a socket and starts the handshake, but cannot answer it: it has no secret."""


def test_a_real_host_proves_itself_and_nothing_else_does(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc, sock, secret = start_host(run_dir)
    adoption = Adoption(secret)
    row = {"address": str(sock)}
    try:
        assert asyncio.run(adoption.prove("agent_001", proc.pid, row)) is None
        # The row names another agent, or another pid of ours (the socket's holder is not it):
        assert "not this run's agent host for agent_002" in str(asyncio.run(adoption.prove("agent_002", proc.pid, row)))
        assert "did not prove itself" in str(asyncio.run(adoption.prove("agent_001", os.getpid(), row)))
        # Another run's secret: the host does not answer its challenge (the console would send it nothing).
        assert "did not prove itself" in str(asyncio.run(Adoption(b"x" * 64).prove("agent_001", proc.pid, row)))
    finally:
        stop_host(proc)
    # No socket at the address, or none named:
    assert "did not answer" in str(asyncio.run(adoption.prove("agent_001", proc.pid, row)))
    assert "names no socket" in str(asyncio.run(adoption.prove("agent_001", proc.pid, {})))


def test_an_impostor_named_like_a_host_is_not_proven(tmp_path: Path) -> None:
    """A process of ours whose command line is an agent host's, holding the row's
    socket, is still no host of this run: it cannot answer the challenge."""
    run_dir = tmp_path / "run"
    proc, _, secret = start_host(run_dir)  # makes the run directory and its secret
    stop_host(proc)
    sock = socket_path(run_dir, "agent_009.sock")
    fake = subprocess.Popen(
        [sys.executable, "-c", IMPOSTOR, str(sock), "-m", "core.runtimes.agent_host", "--agent", "agent_009"],
        start_new_session=True,
    )
    try:
        wait_for(lambda: listening(sock), "the impostor to listen", 20, poll=0.02)
        assert "core.runtimes.agent_host" in psutil.Process(fake.pid).cmdline()
        why = asyncio.run(Adoption(secret).prove("agent_009", fake.pid, {"address": str(sock)}))
        assert why is not None and "nothing was signalled" in why
        assert fake.poll() is None
    finally:
        fake.kill()
        fake.wait(10)


class _Rows:
    """The ``processes`` table of a store: the rows given, those forgotten."""

    def __init__(self, rows: list[tuple[str, int, float, dict[str, object]]]) -> None:
        self.rows = rows
        self.forgotten: list[str] = []

    async def processes(self) -> list[tuple[str, int, float, dict[str, object]]]:
        return self.rows

    async def forget_process(self, agent: str) -> None:
        self.forgotten.append(agent)


SILENT = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen()
print("listening", flush=True)
time.sleep(600)
"""
"""Holds a socket and never accepts on it: a connection waits in its backlog unanswered."""


def test_a_stopped_host_is_still_its_rows_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real host that cannot answer in time (stopped, hung) still holds the row's
    socket as the row's pid: it is adopted (its connection then proves it, or judges it
    stuck as any host), not left running with its task while the task runs again
    elsewhere and a new host takes its socket's name."""
    monkeypatch.setattr(adoption_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    run_dir = tmp_path / "run"
    proc, sock, secret = start_host(run_dir)
    row = {"address": str(sock)}
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED, "the host to stop", 10)
        assert asyncio.run(Adoption(secret).prove("agent_001", proc.pid, row)) is None
        # On opening: the live agent is adopted, its row kept, nothing signalled.
        adoption = Adoption(secret)
        ct = psutil.Process(proc.pid).create_time()
        row["mac"] = adoption.row_mac("agent_001", proc.pid, ct, row)
        store = _Rows([("agent_001", proc.pid, ct, row)])
        engine = SimpleNamespace(
            store=store,
            store_lock=asyncio.Lock(),
            state=SimpleNamespace(agents={"agent_001": Agent(id="agent_001", pool="p", specializations=[])}),
        )
        asyncio.run(adoption.reconcile(engine))  # type: ignore[arg-type]
        assert list(adoption.adoptable) == ["agent_001"] and not adoption.untrusted and store.forgotten == []
        assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
        # The silent holder is not another pid of ours that the row names:
        why = asyncio.run(Adoption(secret).prove("agent_001", os.getpid(), row))
        assert why is not None and "nothing was signalled" in why
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        stop_host(proc)


def test_a_silent_socket_proves_nothing_for_another_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that holds a socket and never answers is adopted as no row's host but
    its own pid's: a row naming another process (here, a bystander of ours) is refused."""
    monkeypatch.setattr(adoption_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    run_dir = tmp_path / "run"
    proc, _, secret = start_host(run_dir)
    stop_host(proc)
    sock = socket_path(run_dir, "agent_009.sock")
    silent = subprocess.Popen([sys.executable, "-c", SILENT, str(sock)], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        wait_for(lambda: listening(sock), "the silent process to listen", 20, poll=0.02)
        why = asyncio.run(Adoption(secret).prove("agent_009", bystander.pid, {"address": str(sock)}))
        assert why is not None and "is held by pid" in why
        assert bystander.poll() is None and silent.poll() is None
    finally:
        for p in (silent, bystander):
            p.kill()
            p.wait(10)

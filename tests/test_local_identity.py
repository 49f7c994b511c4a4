"""A host is known by what it can prove, not by its command line: before a restarted
console adopts or signals a process its ``processes`` row names, the process holding
the row's socket must be the row's pid (``SO_PEERCRED``), know the run's secret and
greet as the row's agent. Every other process is left alone, whatever its name."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import psutil

from core.private import socket_path
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

"""The agent channel: path sockets in private directories, authenticated both ways.

A second local user (uid ``nobody``, from a child process that drops root) can
neither reach an agent host nor command it when its socket is reachable, and a
socket it squats is refused by the console before anything is sent to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.private import PrivateError, private_dir, socket_path, write_private
from core.runtimes.handshake import ChannelError, console_connect, load_or_create_secret
from core.runtimes.wire import encode, messages

from .conftest import REPO, opsdeck_cmd, wait_for
from .local_harness import drive, header, open_text, task_toml, wf_status, workflow_toml

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def nobody_python(code: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the system python as uid nobody (stdlib only, cwd /)."""
    return subprocess.run(
        ["/usr/bin/python3", "-c", code],
        preexec_fn=_as_nobody,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is 0700 to root)."""
    d = Path(tempfile.mkdtemp(prefix="opsdeck-sec-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_host(run_dir: Path, agent: str = "agent_001") -> tuple[subprocess.Popen[bytes], Path, bytes]:
    private_dir(run_dir)
    secret = load_or_create_secret(run_dir)
    sock = socket_path(run_dir, f"{agent}.sock")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(run_dir / f"{agent}.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core.runtimes.agent_host",
                "--agent",
                agent,
                "--socket",
                str(sock),
                "--secret-file",
                str(run_dir / "secret"),
                "--heartbeat",
                "0.5",
            ],
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    # Bound is not listening: the socket file appears at bind(), and a connect before
    # listen() is refused (ECONNREFUSED), so wait until the kernel lists it as listening.

    def up() -> bool:
        assert proc.poll() is None, (run_dir / f"{agent}.log").read_text()
        return listening(sock)

    wait_for(up, "the agent host to listen on its socket", 20, poll=0.02)
    return proc, sock, secret


SO_ACCEPTCON = 0x10000
"""The flag ``/proc/net/unix`` shows on a socket that listens."""


def listening(sock: Path) -> bool:
    """Whether a unix socket bound at ``sock`` listens (``/proc/net/unix``: a line per
    socket, its flags in hex in the fourth field, its path last)."""
    with open("/proc/net/unix") as f:
        next(f)  # the header line
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == str(sock) and int(fields[3], 16) & SO_ACCEPTCON:
                return True
    return False


def stop_host(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def attack_script(sock: Path, marker: Path) -> str:
    """A peer that skips the handshake and asks for a shell command, then tries a forged auth."""
    start = json.dumps({"op": "start", "task": "w/t", "attempt": 0, "command": f"touch {marker}", "shell": True}) + "\n"
    forged = json.dumps({"op": "auth", "mac": "00", "nonce": "0123456789abcdef0123"}) + "\n" + start
    return f"""
import socket, sys
out = []
for first in ({start!r}, {forged!r}):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect({str(sock)!r})
    except OSError as exc:
        print("connect-refused", type(exc).__name__); sys.exit(0)
    s.settimeout(5)
    try:
        s.sendall(first.encode())
        data = s.recv(65536)
        while data:
            out.append(data)
            data = s.recv(65536)
    except OSError:
        pass
    s.close()
print("connected", b"".join(out).decode(errors="replace"))
"""


@as_root
def test_another_user_cannot_reach_or_command_an_agent_host(tmp_path: Path, shared_tmp: Path) -> None:
    run_dir = shared_tmp / "r.db.agents"
    marker = shared_tmp / "pwned"
    proc, sock, secret = start_host(run_dir)
    try:
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(run_dir / "secret").st_mode) == 0o600
        # 1. The directory is 0700: nobody cannot even connect.
        r = nobody_python(attack_script(sock, marker))
        assert "connect-refused PermissionError" in r.stdout, r.stdout + r.stderr
        # 2. Even with the permissions opened up (a mistake, a leaked fd), SO_PEERCRED refuses the other uid.
        os.chmod(run_dir, 0o711)
        os.chmod(sock, 0o666)
        os.chmod(shared_tmp, 0o777)
        r = nobody_python(attack_script(sock, marker))
        assert r.stdout.startswith("connected"), r.stdout + r.stderr
        assert '"hello"' not in r.stdout and "challenge" not in r.stdout  # dropped before a word was said
        # 3. Our own uid without the secret gets a challenge and nothing else.
        r2 = subprocess.run(
            ["/usr/bin/python3", "-c", attack_script(sock, marker)], capture_output=True, text=True, timeout=30
        )
        assert "challenge" in r2.stdout and '"hello"' not in r2.stdout, r2.stdout
        time.sleep(0.5)  # a start that had been accepted would have run `touch` by now (positive control below)
        assert not marker.exists(), "an unauthenticated peer ran a command"
        assert proc.poll() is None
        log = (run_dir / "agent_001.log").read_text()
        assert f"uid {NOBODY}" in log and "refused" in log

        # Positive control: the console, with the secret, does get the command run.
        async def console() -> None:
            reader, writer = await console_connect(str(sock), secret, expect_pid=proc.pid)
            writer.write(encode({"op": "start", "task": "w/t", "attempt": 0, "command": ["touch", str(marker)]}))
            async for msg in messages(reader):
                if msg.get("t") in ("finished", "failed"):
                    assert msg["t"] == "finished", msg
                    break
            writer.close()

        asyncio.run(asyncio.wait_for(console(), 30))
        assert marker.exists()
    finally:
        stop_host(proc)


@as_root
def test_a_squatted_socket_gets_nothing_and_is_refused(shared_tmp: Path) -> None:
    """A socket of another uid at the agent's address: the console refuses it before sending a byte."""
    os.chmod(shared_tmp, 0o777)
    sock = shared_tmp / "agent_001.sock"
    got = shared_tmp / "received"
    listening = shared_tmp / "listening"
    squatter = subprocess.Popen(
        [
            "/usr/bin/python3",
            "-c",
            f"""
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind({str(sock)!r}); s.listen(1)
open({str(listening)!r}, 'w').close()
c, _ = s.accept(); c.settimeout(3)
data = b''
try:
    c.sendall(b'{{"t":"challenge","nonce":"0123456789abcdef0123"}}\\n')
    while True:
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
except OSError:
    pass
open({str(got)!r}, 'wb').write(data)
""",
        ],
        preexec_fn=_as_nobody,
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    try:
        # Bound is not listening: a connect between the squatter's bind and its listen is
        # refused (ECONNREFUSED, "nobody listens yet"), so wait until it says it listens.

        def squatting() -> bool:
            assert squatter.poll() is None, "the squatter exited before it listened"
            return listening.exists()

        wait_for(squatting, "the squatter to listen on the console's socket", 20, poll=0.02)
        with pytest.raises(ChannelError, match=f"uid {NOBODY}"):
            asyncio.run(console_connect(str(sock), b"s" * 64))
        squatter.wait(20)
        assert got.read_bytes() == b""  # not even the authentication reply
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait()


@pytest.mark.slow
@as_root
def test_a_run_directory_owned_by_someone_else_is_refused(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "r.db"
    agents = tmp_path / "r.db.agents"
    agents.mkdir()
    os.chown(agents, NOBODY, NOBODY)
    wf = tmp_path / "w.toml"
    wf.write_text(
        header()
        + workflow_toml(
            "w", task_toml("t", ["true"], "shell"), phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1}
        )
    )
    r = subprocess.run(
        opsdeck_cmd("run", str(wf), "--db", str(db), "--headless"),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert f"owned by uid {NOBODY}" in r.stderr and "Traceback" not in r.stderr
    assert not any(agents.iterdir())  # no secret, no socket, no log left in a directory we do not own
    with pytest.raises(PrivateError):
        private_dir(agents)


def test_private_files_and_directories_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        d = private_dir(tmp_path / "a" / "b")
        f = write_private(d / "f", "x")
        assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600 and f.read_text() == "x"
        link = tmp_path / "link"
        link.symlink_to(d)
        with pytest.raises(PrivateError, match="symlink"):
            private_dir(link)
    finally:
        os.umask(old)


async def test_a_long_database_path_uses_a_short_private_socket_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    text = header() + workflow_toml(
        "w", task_toml("t", ["true"], "shell"), phase="p", allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1}
    )
    old = os.umask(0o022)
    try:
        engine, runtime, _rec = await open_text(deep / "r.db", text, tmp_path)
    finally:
        os.umask(old)
    try:
        for h in runtime.hosts.values():
            assert not h.address.startswith("@") and len(h.address) <= 100
            st = os.stat(h.address) if os.path.exists(h.address) else None
            parent = os.stat(Path(h.address).parent)
            assert stat.S_IMODE(parent.st_mode) == 0o700 and parent.st_uid == os.getuid()
            if st is not None:
                assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        run_dir = deep / "r.db.agents"
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        for f in run_dir.rglob("*"):
            assert stat.S_IMODE(os.stat(f).st_mode) == (0o700 if f.is_dir() else 0o600), f
        await drive(engine, lambda: wf_status(engine, "w") == "completed")
        assert not runtime.security_failures
    finally:
        await runtime.shutdown()
        await engine.close()

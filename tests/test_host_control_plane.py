"""The control plane as a user meets it: one host per database, clients attach.

Every verb runs as a subprocess. Waits are on conditions with generous timeouts
(the suite runs on a loaded 2-core machine), never on fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from core.host.lease import current_holder

from .conftest import REPO, opsdeck_cmd, wait_for
from .local_harness import header, task_toml, workflow_toml

TIMEOUT = 90.0


def run(args: list[str], env: dict[str, str], timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def head(db: Path) -> tuple[int, str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, "")
    finally:
        con.close()


def count(db: Path, type_: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM events WHERE type=?", (type_,)).fetchone()[0]
    finally:
        con.close()


class HostProc:
    """A host subprocess (serve / run --headless) and its stderr, read in a thread."""

    def __init__(self, args: list[str], env: dict[str, str], db: Path) -> None:
        self.db = db
        self.proc = subprocess.Popen(
            opsdeck_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
        )
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(self.listening, f"{' '.join(args)} to listen", TIMEOUT)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"host exited {self.proc.returncode}: {''.join(self.err)}")
        h = current_holder(self.db)
        return (
            h is not None
            and h.pid == self.proc.pid
            and bool(h.socket)
            and any("listening on unix" in ln for ln in self.err)
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)


def events_follower(db: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """``opsdeck events --db DB --follow`` as a process, and its stderr lines as they come
    (read in a thread)."""
    follower = subprocess.Popen(
        opsdeck_cmd("events", "--db", str(db), "--follow"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    err: list[str] = []
    stderr = follower.stderr
    assert stderr is not None
    threading.Thread(target=lambda: err.extend(stderr), daemon=True).start()
    return follower, err


@pytest.fixture
def demo_host(tmp_path: Path, env: dict[str, str]) -> Iterator[HostProc]:
    db = tmp_path / "live.db"
    host = HostProc(["serve", "--demo", "--db", str(db), "--speed", "30", "--listen", "127.0.0.1:0"], env, db)
    try:
        yield host
    finally:
        host.stop()
        assert run(["verify", "--db", str(db)], env).returncode == 0


SLEEPY = header() + workflow_toml(
    "sleepy",
    task_toml("nap", ["sleep", "%s"], "shell", memory_gb=0, cpu=0.1),
    phase="one",
    priority=60,
    allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
)


def task_process(marker: str) -> psutil.Process | None:
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["sleep", marker]:
            return p
    return None


@pytest.mark.slow
def test_exec_pause_and_resume_reach_the_real_processes_of_a_live_run(tmp_path: Path, env: dict[str, str]) -> None:
    marker = f"{300 + os.getpid() % 1000}.{time.monotonic_ns() % 10_000}"
    wf = tmp_path / "sleepy.toml"
    wf.write_text(SLEEPY % marker)
    db = tmp_path / "run.db"
    host = HostProc(["run", str(wf), "--headless", "--db", str(db)], env, db)
    try:
        proc = wait_for(lambda: task_process(marker), "the task process", TIMEOUT)
        assert isinstance(proc, psutil.Process)
        wait_for(lambda: count(db, "TASK_ASSIGNED") >= 1, "the task assigned", TIMEOUT)
        out = run(["exec", "--db", str(db), "--json", "/coordination-hub pause sleepy"], env)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] == "success"
        wait_for(lambda: proc.status() == psutil.STATUS_STOPPED, "the task stopped (T)", TIMEOUT)
        out = run(["exec", "--db", str(db), "/coordination-hub resume sleepy"], env)
        assert out.returncode == 0, out.stderr
        wait_for(
            lambda: proc.status() in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING),
            "the task running again (S/R)",
            TIMEOUT,
        )
        # A host's clock is its own: --advance is refused and nothing is sent.
        n = head(db)
        adv = run(["exec", "--db", str(db), "--advance", "5m", "/host status"], env)
        assert adv.returncode == 2 and "live host" in adv.stderr
        assert count(db, "COMMAND_EXECUTED") == 2
        assert head(db)[0] >= n[0]
        # A script's advance is refused by a real-time host, naming why; nothing was advanced.
        script = tmp_path / "adv.ops"
        script.write_text("/workflow-status sleepy\nadvance 1m\n")
        sc = run(["script", str(script), "--db", str(db)], env)
        assert sc.returncode == 1, sc.stderr
        assert f"{script}:2: advance: advance 60s: the host (pid {host.proc.pid}) runs in real time" in sc.stderr
        # A query's record is committed by the host's next commit, after its answer.
        wait_for(lambda: count(db, "COMMAND_EXECUTED") == 3, "the query's record committed", TIMEOUT)
        assert count(db, "COMMAND_EXECUTED") == 3
    finally:
        host.stop()
    assert task_process(marker) is None
    assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
def test_twenty_concurrent_exec_clients_are_all_answered(demo_host: HostProc, env: dict[str, str]) -> None:
    db = demo_host.db
    before = count(db, "COMMAND_EXECUTED")

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return run(
            ["exec", "--db", str(db), "--json", "--actor", f"client-{i}", "/resource-manager status"], env, timeout=240
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "success"
    wait_for(lambda: count(db, "COMMAND_EXECUTED") - before == 20, "20 commands in the log", TIMEOUT)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    actors = {r[0] for r in con.execute("SELECT actor FROM events WHERE type='COMMAND_EXECUTED'")}
    con.close()
    assert {f"client-{i}" for i in range(20)} <= actors


@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_log_is_untouched(
    demo_host: HostProc, env: dict[str, str], tmp_path: Path
) -> None:
    db = demo_host.db
    recorded = count(db, "COMMAND_EXECUTED")
    assert run(["exec", "--db", str(db), "/host clock pause"], env).returncode == 0
    # A command that emits nothing is answered before its own record commits (within 0.1 s).
    wait_for(lambda: count(db, "COMMAND_EXECUTED") > recorded, "the pause's record", TIMEOUT)
    before = head(db)
    wf = tmp_path / "other.toml"
    wf.write_text(SLEEPY % "1")
    alias = tmp_path / "alias.db"  # another name for the same file shares its lease
    alias.symlink_to(db)
    for args in (
        ["serve", "--db", str(db)],
        ["serve", "--demo", "--db", str(alias)],
        ["run", str(wf), "--headless", "--db", str(db)],
    ):
        out = run(args, env)
        assert out.returncode == 2, (args, out.stderr)
        assert f"pid {demo_host.proc.pid}" in out.stderr and "since" in out.stderr and "attach" in out.stderr
        assert "Traceback" not in out.stderr
    assert head(db) == before
    assert current_holder(db).pid == demo_host.proc.pid  # type: ignore[union-attr]


@pytest.mark.slow
def test_endpoint_files_are_private_and_tcp_needs_the_token(demo_host: HostProc) -> None:
    db = demo_host.db
    holder = current_holder(db)
    assert holder is not None and holder.listen and holder.socket
    for f in (Path(holder.socket), Path(f"{db}.token"), Path(f"{db}.lease")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    url = f"http://{holder.listen}"
    body = json.dumps({"command": "/host status", "actor": "remote"}).encode()
    with pytest.raises(urllib.error.HTTPError) as no_token:
        urllib.request.urlopen(urllib.request.Request(f"{url}/v1/commands", data=body, method="POST"), timeout=30)
    assert no_token.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/v1/commands", data=body, method="POST", headers={"Authorization": "Bearer nope"}
            ),
            timeout=30,
        )
    assert wrong.value.code == 401
    health = json.loads(urllib.request.urlopen(f"{url}/v1/health", timeout=30).read())
    assert "pid" not in health and "db" not in health and health["runtime"] == "sim"  # no token: no pid or path
    token = Path(f"{db}.token").read_text().strip()
    authed = urllib.request.Request(f"{url}/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert json.loads(urllib.request.urlopen(authed, timeout=30).read())["pid"] == demo_host.proc.pid
    ok = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/v1/commands", data=body, method="POST", headers={"Authorization": f"Bearer {token}"}
            ),
            timeout=30,
        ).read()
    )
    assert ok["status"] == "success" and ok["result"]["pid"] == demo_host.proc.pid
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/v1/commands", data=b"{not json", method="POST", headers={"Authorization": f"Bearer {token}"}
            ),
            timeout=30,
        )
    assert bad.value.code == 400 and b"not JSON" in bad.value.read()


@pytest.mark.slow
def test_sigkill_of_the_host_is_reported_to_a_follower_and_the_lease_is_free(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "k.db"
    host = HostProc(["serve", "--demo", "--db", str(db), "--speed", "30"], env, db)
    follower, err = events_follower(db, env)
    try:
        wait_for(
            lambda: any(f"following the live host (pid {host.proc.pid})" in ln for ln in err),
            "the follower to attach",
            TIMEOUT,
        )
        host.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        host.proc.wait(timeout=TIMEOUT)
        wait_for(lambda: any(f"the host (pid {host.proc.pid}) is gone" in ln for ln in err), "host gone", 30)
        noticed = time.monotonic() - killed
        assert noticed < 10.0, noticed  # EOF on the socket: immediate; generous for a loaded machine
        assert current_holder(db) is None
        again = HostProc(["serve", "--db", str(db), "--speed", "30"], env, db)
        try:
            wait_for(
                lambda: any(f"following the live host (pid {again.proc.pid})" in ln for ln in err),
                "the follower to attach to the new host",
                TIMEOUT,
            )
        finally:
            again.stop()
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.wait(timeout=TIMEOUT)
        if host.proc.poll() is None:
            host.proc.kill()
    assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
def test_a_db_typo_is_refused_and_nothing_is_created(tmp_path: Path, env: dict[str, str]) -> None:
    typo = tmp_path / "no" / "such" / "fleet.db"
    beside = tmp_path / "fleet.db"
    script = tmp_path / "s.ops"
    script.write_text("/resource-manager status\n")
    for args in (
        ["exec", "--db", str(typo), "/resource-manager status"],
        ["exec", "--db", str(beside), "/workflow-status"],
        ["script", str(script), "--db", str(typo)],
        ["events", "--db", str(beside)],
        ["exec", "--create", "--db", str(typo), "/workflow-status"],
    ):
        out = run(args, env)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "no such" in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "s.ops"]
    made = run(["exec", "--create", "--db", str(beside), "/workflow-status"], env)
    assert made.returncode == 0 and beside.exists()
    assert run(["verify", "--db", str(beside)], env).returncode == 0


@pytest.mark.slow
def test_two_headless_demos_without_db_leave_both_databases(tmp_path: Path, env: dict[str, str]) -> None:
    outs = [run(["demo", "--headless", "--for", "300"], env) for _ in range(2)]
    for o in outs:
        assert o.returncode == 0, o.stderr
    dbs = sorted((tmp_path / "home" / "demos").glob("*.db"))
    assert len(dbs) == 2
    said = "".join(o.stderr for o in outs)
    for db in dbs:
        assert f"a new demo database {db}" in said
        assert count(db, "WORKFLOW_CREATED") >= 6
        assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
def test_reopening_a_sim_database_restarts_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    """Ten read-only in-process execs add their ten COMMAND_EXECUTED records and nothing else."""
    db = tmp_path / "re.db"
    first = run(["exec", "--create", "--db", str(db), "--advance", "10m", "/resource-manager status"], env)
    assert first.returncode == 0, first.stderr
    con = sqlite3.connect(db)
    running = con.execute("SELECT count(*) FROM events WHERE type='TASK_ASSIGNED'").fetchone()[0]
    con.close()
    assert running > 0
    before = head(db)[0]
    from opsdeck.cli import main

    old = dict(os.environ)
    os.environ["OPSDECK_HOME"] = env["OPSDECK_HOME"]
    try:
        for _ in range(10):
            assert main(["exec", "--db", str(db), "/resource-manager status"]) == 0
    finally:
        os.environ.clear()
        os.environ.update(old)
    con = sqlite3.connect(db)
    new = [r[0] for r in con.execute("SELECT type FROM events WHERE seq > ?", (before,))]
    con.close()
    assert new == ["COMMAND_EXECUTED"] * 10
    assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
def test_a_script_runs_against_a_live_host(demo_host: HostProc, env: dict[str, str], tmp_path: Path) -> None:
    db = demo_host.db
    script = tmp_path / "live.ops"
    script.write_text(
        "/host clock pause\n"
        '/coordination-hub checkpoint \'{"label": "from a script"}\'\n'
        'expect CHECKPOINT_CREATED label="from a script" within 30s\n'
        "advance 2m\n"
        "expect TASK_PROGRESS within 30s\n"
        "fault fail agent_001\n"
    )
    out = run(["script", str(script), "--db", str(db), "--quiet"], env)
    assert out.returncode == 1, out.stderr
    assert f"{script}:6: fault: faults need the simulated runtime in this process" in out.stderr
    assert "expectation met: CHECKPOINT_CREATED" in out.stdout and "expectation met: TASK_PROGRESS" in out.stdout
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    labels = [
        json.loads(r[0]).get("label") for r in con.execute("SELECT data FROM events WHERE type='CHECKPOINT_CREATED'")
    ]
    con.close()
    assert "from a script" in labels


async def test_the_event_stream_replays_then_follows_without_gaps_or_duplicates(tmp_path: Path) -> None:
    """Committed rows after SEQ from the store, then live ones: each seq once, in order, hashes as stored."""
    import asyncio

    from core.config import Config
    from core.host.client import HostClient
    from core.host.host import Host

    db = tmp_path / "s.db"
    host = await Host.open_sim(db, Config(), demo=True, create=True, speed=30)
    await host.serve()
    try:
        await host.advance(300)
        since = host.engine.state.seq // 2
        client = HostClient.for_db(db)
        assert client is not None
        seen: list[dict[str, object]] = []

        async def follow() -> None:
            async for obj in client.event_objects(since):
                seen.append(obj)

        task = asyncio.get_running_loop().create_task(follow())
        for _ in range(5):  # commands and clock steps interleaved with the stream
            await host.advance(120)
            assert (await client.send("/resource-manager status", actor="t"))["status"] == "success"
        end = host.engine.state.seq
        for _ in range(600):
            if seen and seen[-1]["seq"] == end:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await client.close()
        seqs = [o["seq"] for o in seen]
        assert seqs == list(range(since + 1, end + 1))
        rows = {r[0]: r for r in await host.engine.store.raw_rows(since, 100000)}
        for o in seen:
            r = rows[o["seq"]]
            assert o["hash"] == r[8] and o["type"] == r[2] and o["line"].startswith(f"{r[2]}:{r[3]}:{r[4]}:")
    finally:
        await host.close()


@pytest.mark.slow
def test_a_client_killed_mid_command_loses_nothing(demo_host: HostProc, env: dict[str, str]) -> None:
    """The command a killed client sent runs to its commit: it is in the log, whole."""
    db = demo_host.db
    assert run(["exec", "--db", str(db), "/host clock pause"], env).returncode == 0
    holder = current_holder(db)
    assert holder is not None and holder.listen
    health = f"http://{holder.listen}/v1/health"

    def clock() -> float:
        return float(json.loads(urllib.request.urlopen(health, timeout=30).read())["clock"])

    start = clock()
    client = subprocess.Popen(
        opsdeck_cmd("exec", "--db", str(db), "--actor", "killed-client", "/host advance 20m"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
    )
    try:
        wait_for(lambda: clock() > start + 60, "the command to be running", TIMEOUT)
    finally:
        client.kill()
        client.wait(timeout=TIMEOUT)
    assert clock() < start + 1200 - 1, "the command had already finished: the client was not killed mid-command"
    wait_for(lambda: clock() >= start + 1200 - 1, "the command to finish without its client", TIMEOUT)

    def recorded() -> list[dict[str, object]]:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return [
                json.loads(r[0])
                for r in con.execute("SELECT data FROM events WHERE type='COMMAND_EXECUTED' AND actor='killed-client'")
            ]
        finally:
            con.close()

    done = wait_for(recorded, "the killed client's command in the log", TIMEOUT)
    assert done[0]["command"] == "/host advance 20m" and done[0]["status"] == "success"

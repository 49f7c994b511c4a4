"""The console attached to a live host (``opsdeck serve`` in a subprocess), driven with
the Pilot: it follows the host's events, its approve and rollback reach the host's
log, read-only it moves and refuses, and it says so within 2 s when the host dies.

Waits are on conditions with generous timeouts (a loaded 2-core machine)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from core.config import Config
from tests.conftest import REPO, opsdeck_cmd
from tests.console_support import came_true, confirm
from tests.test_console_pty import ANSI, _read_until
from tests.test_host_control_plane import HostProc, head, run
from tui.app import OpsdeckApp
from tui.screens.checkpoints import CheckpointsScreen

MANUAL_TOML = '[approval]\nauto = []\nmanual = ["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]\n'
LONG = 90.0


def serve(tmp_path: Path, env: dict[str, str], db: Path, *extra: str) -> HostProc:
    cfg = tmp_path / "manual.toml"
    cfg.write_text(MANUAL_TOML)
    return HostProc(["--config", str(cfg), "serve", "--db", str(db), *extra], env, db)


def rows(db: Path, type_: str) -> list[tuple[int, str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.execute("SELECT seq, actor FROM events WHERE type=? ORDER BY seq", (type_,)))
    finally:
        con.close()


def header_text(app: OpsdeckApp) -> str:
    return str(app.header_pane.render())


@pytest.mark.slow
async def test_attached_console_follows_the_host_and_acts_on_it(tmp_path, env):
    db = tmp_path / "live.db"
    host = serve(tmp_path, env, db, "--demo", "--speed", "30")
    try:
        app = OpsdeckApp(db, Config(), demo=True)
        async with app.run_test(size=(120, 40)) as pilot:
            link = await app.link_opened(LONG)
            assert link.kind == "attached" and app.host is None, "a live host holds the database: attach, never host"
            assert link.host_pid == host.proc.pid
            assert f"attached to host pid {host.proc.pid}" in header_text(app)
            # The replica follows the host's log as its clock runs.
            s0 = link.state.seq
            assert await came_true(pilot, lambda: link.state.seq > s0 + 20, LONG)
            assert link.state.seq <= head(db)[0]
            assert await came_true(pilot, lambda: app.log_pane.head >= s0 + 20, LONG)

            # A drill from the palette's action, then its plan approved with the key.
            app.start_drill_named("resource-exhaustion")
            await confirm(app, pilot, timeout=LONG)
            assert await came_true(pilot, lambda: bool(rows(db, "COMMAND_EXECUTED")), LONG), (
                "the drill command reached the host"
            )
            deadline = time.monotonic() + 240
            while not [p for p in link.state.plans.values() if p.state == "proposed"]:
                assert time.monotonic() < deadline, "no plan proposed"
                res = await link.send("/host advance 5m")
                assert res["status"] == "success", res
                # The advance is committed before its answer: the replica follows up to it.
                committed = head(db)[0]
                assert await came_true(pilot, lambda c=committed: link.state.seq >= c, LONG), (
                    link.state.seq,
                    committed,
                )
            pid = next(k for k, p in link.state.plans.items() if p.state == "proposed")
            app.refresh_panes()
            await pilot.press("a")
            await confirm(app, pilot, timeout=LONG)
            assert await came_true(pilot, lambda: link.state.plans[pid].state != "proposed", LONG)
            approved = rows(db, "PLAN_APPROVED")
            assert approved and approved[-1][1] == "operator"

            # A checkpoint (key c), then a rollback to it from the checkpoints screen.
            last = max(link.state.checkpoints, default=0)

            def mine() -> list[int]:  # the host takes its own checkpoints meanwhile
                return [c.id for c in link.state.checkpoints.values() if c.id > last and c.kind == "manual"]

            await pilot.press("c")
            assert await came_true(pilot, lambda: bool(mine()), LONG)
            cp = mine()[0]
            await pilot.press("b")
            assert await came_true(pilot, lambda: isinstance(app.screen, CheckpointsScreen), LONG)
            ol = app.screen.query_one("OptionList")
            assert await came_true(pilot, lambda: str(cp) in [o.id for o in ol.options], LONG)
            ol.highlighted = [o.id for o in ol.options].index(str(cp))
            await pilot.press("enter")
            await confirm(app, pilot, timeout=LONG)
            assert await came_true(pilot, lambda: bool(rows(db, "STATE_RESTORED")), LONG)
            restored = rows(db, "STATE_RESTORED")
            assert restored[-1][1] == "operator"
            assert await came_true(pilot, lambda: link.state.seq >= restored[-1][0], LONG)
    finally:
        host.stop()
    assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
async def test_readonly_attached_console_stays_live_and_refuses(tmp_path, env):
    db = tmp_path / "live.db"
    host = serve(tmp_path, env, db, "--demo", "--speed", "60")
    try:
        app = OpsdeckApp(db, Config(), readonly=True)
        async with app.run_test(size=(120, 40)) as pilot:
            link = await app.link_opened(LONG)
            assert link.readonly and link.kind == "attached" and link.host_pid == host.proc.pid
            t0, s0 = link.clock.now(), link.state.seq
            assert await came_true(pilot, lambda: link.clock.now() > t0 + 30 and link.state.seq > s0, LONG), (
                "clock and panes move"
            )
            assert "read-only" in header_text(app)
            before = head(db)[0]
            app.workflows_pane.focus()
            await pilot.press("p", "c")
            assert await came_true(
                pilot, lambda: any("read-only" in n.message and "Pause" in n.message for n in app._notifications), LONG
            )
            res = await link.send("/coordination-hub pause workflow_001")
            assert res["status"] == "error" and res["error"]["code"] == "READ_ONLY"
            res = await link.send("/resource-manager status")
            assert res["status"] == "success", res
            assert await came_true(pilot, lambda: head(db)[0] > before, LONG)
        assert not [r for r in rows(db, "COMMAND_EXECUTED") if r[1] == "operator"], "a watcher records nothing"
        assert not rows(db, "WORKFLOW_PAUSED")
    finally:
        host.stop()


@pytest.mark.slow
async def test_host_killed_the_console_says_so_and_reconnects(tmp_path, env):
    db = tmp_path / "live.db"
    host = serve(tmp_path, env, db, "--demo", "--speed", "30")
    second: HostProc | None = None
    try:
        app = OpsdeckApp(db, Config())
        async with app.run_test(size=(120, 40)) as pilot:
            link = await app.link_opened(LONG)
            pid = host.proc.pid
            assert await came_true(pilot, lambda: link.state.seq > 0 and link.host_pid == pid, LONG)
            host.proc.kill()
            t0 = time.monotonic()
            assert await came_true(pilot, lambda: link.gone is not None, 10)
            took = time.monotonic() - t0
            assert took < 2.0, f"the console noticed after {took:.2f}s"
            gone = f"the host (pid {pid}) is gone"
            assert link.gone == gone and gone in header_text(app)
            assert link.trouble is None, "a killed host is gone, not a fold failing here"
            assert await came_true(pilot, lambda: any(gone in n.message for n in app._notifications), 5)
            host.proc.wait(timeout=LONG)
            # The last state stays on screen; actions are refused with the reason. The
            # stream may have lagged the commits when the host died (under load): the
            # console reads the rest from the file, so wait for it to reach the head.
            final = head(db)[0]
            assert await came_true(pilot, lambda: link.state.seq == final, LONG), (link.state.seq, final)
            seq = link.state.seq
            assert len(link.state.workflows) == 6
            app.workflows_pane.focus()
            await pilot.press("p")
            assert await came_true(
                pilot, lambda: any(gone in n.message and "Pause" in n.message for n in app._notifications), 5
            )
            res = await link.send("/coordination-hub checkpoint")
            assert res["status"] == "error" and res["error"]["code"] == "HOST_GONE"
            assert head(db)[0] == seq
            # A new host takes the lease: the console follows it.
            second = await asyncio.to_thread(serve, tmp_path, env, db, "--speed", "30")
            assert await came_true(pilot, lambda: link.gone is None and link.host_pid == second.proc.pid, LONG)
            assert await came_true(pilot, lambda: link.state.seq > seq, LONG)
            assert f"attached to host pid {second.proc.pid}" in header_text(app)
    finally:
        if second is not None:
            second.stop()
        if host.proc.poll() is None:
            host.stop()
    assert run(["verify", "--db", str(db)], env).returncode == 0


@pytest.mark.slow
def test_opsdeck_console_attaches_from_the_command_line(tmp_path, env):
    """``opsdeck console --db D`` in a terminal, with a live host on D: the title says
    it is attached to that pid, and quitting leaves the host running."""
    db = tmp_path / "live.db"
    host = serve(tmp_path, env, db, "--demo", "--speed", "30")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        opsdeck_cmd("console", "--db", str(db)),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env={**env, "TERM": "xterm-256color"},
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    try:
        want = f"attached to host pid {host.proc.pid}".encode()
        out = ANSI.sub(b"", _read_until(master, [want, b"workflow_001"], LONG))
        assert want in out and b"workflow_001" in out
        os.write(master, b"q")
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _read_until(master, [b"\x00never"], 0.2)
        assert proc.wait(timeout=5) == 0
        assert host.proc.poll() is None, "quitting an attached console leaves the host running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        host.stop()

"""The command line as a user runs it: demo headless, events, verify, clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from core.events import parse_line

from .conftest import opsdeck_cmd


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, env=env, timeout=120, **kw)


@pytest.mark.slow
def test_help_lists_every_verb(cli_env: dict[str, str]) -> None:
    out = run(["--help"], cli_env)
    assert out.returncode == 0
    for verb in ("demo", "events", "verify"):
        assert verb in out.stdout
    sub = run(["demo", "--help"], cli_env)
    assert "--headless" in sub.stdout and "--seed" in sub.stdout


@pytest.mark.slow
def test_headless_demo_prints_event_lines_and_verifies(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "d.db"
    out = run(["demo", "--headless", "--for", "900", "--db", str(db)], cli_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) > 50
    types = [parse_line(ln).type for ln in lines]
    assert "WORKFLOW_STARTED" in types and "TASK_ASSIGNED" in types
    ver = run(["verify", "--db", str(db)], cli_env)
    assert ver.returncode == 0 and "chain verified" in ver.stdout
    evs = run(["events", "--db", str(db), "--type", "WORKFLOW_STARTED"], cli_env)
    assert evs.returncode == 0
    assert all(ln.startswith("WORKFLOW_STARTED:") for ln in evs.stdout.splitlines())
    assert len(evs.stdout.splitlines()) == types.count("WORKFLOW_STARTED")


@pytest.mark.slow
def test_verify_names_the_first_bad_sequence_number(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "d.db"
    assert run(["demo", "--headless", "--for", "600", "--db", str(db)], cli_env).returncode == 0
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET data=replace(data, 'workflow_00', 'workflow_99') WHERE seq=40")
    con.commit()
    con.close()
    ver = run(["verify", "--db", str(db)], cli_env)
    assert ver.returncode == 1
    assert "first bad sequence number 40" in ver.stdout


@pytest.mark.slow
def test_bad_database_gets_a_message_not_a_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00" * 100)
    for verb in (["verify"], ["events"], ["demo", "--headless", "--for", "10"]):
        out = run([*verb, "--db", str(junk)], cli_env)
        assert out.returncode == 2
        assert "not an opsdeck database" in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_bad_config_names_the_key(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[capacity]\ncpu_cores = -4\n[intervals]\nheartbeat = 3\n")
    out = run(["--config", str(cfg), "demo", "--headless", "--for", "10", "--db", str(tmp_path / "x.db")], cli_env)
    assert out.returncode == 2
    assert "capacity.cpu_cores" in out.stderr and "intervals.heartbeat" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "x.db").exists()

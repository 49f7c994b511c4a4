"""The headless contract, as a script meets it: stdout carries only the output (JSON that
parses, with --json), errors go to stderr, bad arguments and values exit 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, opsdeck_cmd

# The demo database is built once for the module: one worker under pytest-xdist.
pytestmark = pytest.mark.xdist_group("headless")


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    db = tmp_path_factory.mktemp("headless") / "h.db"
    env = {**os.environ, "OPSDECK_HOME": str(db.parent / "home")}
    out = run(["demo", "--headless", "--for", "120", "--json", "--db", str(db)], env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    records = [json.loads(x) for x in lines]  # every line parses
    assert records[-1]["summary"] == "demo" and records[-1]["seq"] == records[-2]["seq"]
    assert all({"seq", "type", "data", "severity"} <= set(r) for r in records[:-1])
    return db


@pytest.mark.slow
def test_exec_errors_go_to_stderr_without_a_blob(demo_db: Path, cli_env: dict[str, str]) -> None:
    out = run(["exec", "--db", str(demo_db), "/resource-manager stats"], cli_env)
    assert out.returncode == 1 and out.stdout == ""
    assert "UNKNOWN_OPERATION" in out.stderr and "try: /resource-manager status" in out.stderr
    assert "agent-pool-assessment" not in out.stderr  # the 22 known operations are counted, not dumped
    js = run(["exec", "--db", str(demo_db), "--json", "/resource-manager stats"], cli_env)
    assert js.returncode == 1 and json.loads(js.stdout)["error"]["code"] == "UNKNOWN_OPERATION"
    assert "UNKNOWN_OPERATION" in js.stderr
    ok = run(["exec", "--db", str(demo_db), "--json", "/resource-manager status"], cli_env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["status"] == "success" and ok.stderr == ""


@pytest.mark.slow
@pytest.mark.parametrize("bad", [["--type", "BOGUS"], ["--type", "task_progress"], ["--limit", "-1"], ["--since", "x"]])
def test_events_refuses_values_that_can_match_nothing(demo_db: Path, cli_env: dict[str, str], bad: list[str]) -> None:
    out = run(["events", "--db", str(demo_db), *bad], cli_env)
    assert out.returncode == 2 and out.stdout == "" and out.stderr.strip()
    if bad[1] == "task_progress":
        assert "did you mean TASK_PROGRESS" in out.stderr


@pytest.mark.slow
def test_events_json_lines_have_what_help_promises(demo_db: Path, cli_env: dict[str, str]) -> None:
    out = run(["events", "--db", str(demo_db), "--json", "--type", "TASK_PROGRESS", "--limit", "3"], cli_env)
    assert out.returncode == 0
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(rows) == 3 and all(r["type"] == "TASK_PROGRESS" for r in rows)
    helptext = run(["events", "--help"], cli_env).stdout
    for field in ("seq", "ts", "type", "component", "scope", "actor", "severity", "data"):
        assert field in helptext and all(field in r for r in rows)
    assert "hash" not in helptext


@pytest.mark.slow
def test_drill_json_quiet_prints_only_the_report(tmp_path: Path, cli_env: dict[str, str]) -> None:
    out = run(["drill", "data-integrity", "--json", "--quiet", "--db", str(tmp_path / "d.db")], cli_env)
    report = json.loads(out.stdout)  # the whole stdout is one object
    assert report["drill"] == "data-integrity" and out.returncode == (0 if report["validated"] else 1)


@pytest.mark.slow
def test_script_json_lines(tmp_path: Path, cli_env: dict[str, str]) -> None:
    s = tmp_path / "s.ops"
    s.write_text("advance 1m\nexpect TASK_PROGRESS\n/coordination-hub nope\n", encoding="utf-8")
    out = run(["script", "--json", str(s)], cli_env)
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert (
        out.returncode == 1
        and rows[-1]["summary"] == "script"
        and rows[-1]["ok"] is False
        and rows[-1]["failed_line"] == 3
    )
    assert any(r.get("kind") == "event" for r in rows) and f"{s}:3:" in out.stderr


@pytest.mark.slow
def test_help_shows_no_raw_markup(cli_env: dict[str, str]) -> None:
    out = run(["help", "/coordination-hub", "emergency-cleanup"], cli_env)
    assert out.returncode == 0 and "resource_recovery_target" in out.stdout and "``" not in out.stdout

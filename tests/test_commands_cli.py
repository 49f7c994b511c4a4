"""The headless modes as a user runs them: opsdeck script, exec and help, as subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.events import parse_line

from .conftest import REPO, opsdeck_cmd

EXAMPLES = REPO / "examples" / "scripts"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(opsdeck_cmd(*args), capture_output=True, text=True, env=env, timeout=120, cwd=REPO)


@pytest.mark.slow
def test_script_passes_and_prints_event_lines(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "s.db"
    out = run(["script", "--create", "--db", str(db), str(EXAMPLES / "resource-exhaustion.ops")], cli_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    events = [ln for ln in lines if not ln.startswith("#")]
    types = [parse_line(ln).type for ln in events]
    for t in (
        "RESOURCE_EXHAUSTION",
        "WORKFLOW_PAUSED",
        "RESOURCE_RESERVED",
        "RESUMPTION_CREATED",
        "RESUMPTION_COMPLETED",
        "COMMAND_EXECUTED",
    ):
        assert t in types, t
    assert any("expectation met: RESUMPTION_COMPLETED" in ln for ln in lines)
    assert any("expect-error INVALID_PAYLOAD" in ln for ln in lines)
    # The database holds what the script did: the log verifies and replays.
    ver = run(["verify", "--db", str(db)], cli_env)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    evs = run(["events", "--db", str(db), "--type", "COMMAND_EXECUTED", "--json"], cli_env)
    recorded = [json.loads(ln) for ln in evs.stdout.splitlines()]
    assert [r["data"]["operation"] for r in recorded] == [
        "emergency-analysis",
        "emergency-reallocation",
        "gradual-resumption",
    ]
    assert all(r["actor"] == "script" for r in recorded)


@pytest.mark.slow
def test_script_stops_at_the_failed_expectation(cli_env: dict[str, str]) -> None:
    path = EXAMPLES / "failing-expectation.ops"
    out = run(["script", str(path)], cli_env)
    assert out.returncode == 1
    assert f"{path}:8: expectation failed: WORKFLOW_COMPLETED workflow_id=workflow_003" in out.stderr
    assert "waited 600s" in out.stderr
    assert "expectation met: WORKFLOW_PAUSED" in out.stdout
    assert any(ln.startswith("WORKFLOW_PAUSED:") for ln in out.stdout.splitlines())


@pytest.mark.slow
def test_script_errors_name_the_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.ops"
    bad.write_text("advance 1m\nfrobnicate now\n")
    out = run(["script", str(bad)], cli_env)
    assert out.returncode == 2 and f"{bad}:2: unknown step 'frobnicate'" in out.stderr
    bad.write_text('# ok\nRESOURCE_EXHAUSTION:system:global:{"cpu": 9\n')
    out = run(["script", str(bad)], cli_env)
    assert out.returncode == 2 and f"{bad}:2: event line, column" in out.stderr
    bad.write_text("advance 1m\n/coordination-hub pause no_such_workflow\nadvance 1m\n")
    out = run(["script", "--quiet", str(bad)], cli_env)
    assert out.returncode == 1 and f"{bad}:2: command failed: WORKFLOW_NOT_FOUND" in out.stderr


@pytest.mark.slow
def test_exec_runs_one_command_on_a_database(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "e.db"
    out = run(
        [
            "exec",
            "--create",
            "--db",
            str(db),
            "--advance",
            "5m",
            "--json",
            '/coordination-hub checkpoint \'{"label": "cli"}\'',
        ],
        cli_env,
    )
    assert out.returncode == 0, out.stderr
    resp = json.loads(out.stdout)
    assert resp["status"] == "success" and resp["result"]["checkpoint"] >= 1
    cp = resp["result"]["checkpoint"]
    again = run(["exec", "--db", str(db), "--json", "/workflow-recovery list-checkpoints"], cli_env)
    assert again.returncode == 0, again.stderr
    listed = {c["id"]: c for c in json.loads(again.stdout)["result"]["checkpoints"]}
    assert listed[cp]["label"] == "cli" and listed[cp]["kind"] == "manual"
    bad = run(["exec", "--db", str(db), "/workflow-recovery restore '{\"checkpoint\": 99}'"], cli_env)
    assert bad.returncode == 1 and "error CHECKPOINT_NOT_FOUND" in bad.stderr and bad.stdout == ""


@pytest.mark.slow
def test_help_lists_and_explains(cli_env: dict[str, str]) -> None:
    out = run(["help"], cli_env)
    assert out.returncode == 0 and "/resource-manager" in out.stdout and "emergency-reallocation" in out.stdout
    one = run(["help", "/workflow-recovery", "gradual-resumption"], cli_env)
    assert one.returncode == 0 and "stages" in one.stdout and "kind: lifecycle" in one.stdout
    js = run(["help", "--json"], cli_env)
    entries = json.loads(js.stdout)
    assert {e["kind"] for e in entries} <= {"analysis", "checkpoint", "monitoring", "destructive", "lifecycle"}
    miss = run(["help", "/resource-manager", "emergency-realocation"], cli_env)
    assert miss.returncode == 1 and "emergency-reallocation" in miss.stderr

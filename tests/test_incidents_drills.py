"""Drills end to end, as a user runs them: ``opsdeck drill NAME`` in a subprocess.

Each exits 0 only when the recovery validated and the final invariants hold; with
``--approve manual`` decisions are read as commands from stdin."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.incidents.kinds import SCENARIOS

from .conftest import REPO, opsdeck_cmd
from .local_harness import kill_agent_hosts_under

SEED_FIELDS = {
    "EMERGENCY_RESPONSE_ACTIVATED": {"response_level", "estimated_recovery_time", "affected_workflows"},
    "EMERGENCY_RESPONSE_COMPLETED": {"recovery_time", "resource_stabilization", "workflows_recovered", "system_health"},
    "RECOVERY_PLAN_GENERATED": {"strategy", "estimated_time", "workflow_continuity"},
    "RECOVERY_VALIDATION_COMPLETED": {
        "workflows_recovered",
        "dependency_integrity",
        "context_transfer",
        "recovery_time",
    },
    "OPTIMIZATION_STRATEGY_GENERATED": {"optimization_potential", "implementation_time", "risk_level"},
    "OPTIMIZATION_COMPLETED": {"improvement_achieved", "optimization_time", "stability", "regression_risk"},
    "DATA_RECOVERY_STRATEGY": {"strategy", "data_loss_risk", "recovery_confidence"},
    "DATA_RECOVERY_COMPLETED": {"recovery_success", "data_integrity", "corrupted_segments", "validation_passed"},
    "RESILIENT_COORDINATION_ACTIVATED": {"strategy", "estimated_recovery", "functionality_preserved"},
    "NETWORK_RECOVERY_COMPLETED": {
        "recovery_time",
        "connectivity_restored",
        "performance_impact",
        "redundancy_established",
    },
}

COMPLETION = {
    "resource-exhaustion": "EMERGENCY_RESPONSE_COMPLETED:system:validation:",
    "agent-cascade": "RECOVERY_VALIDATION_COMPLETED:coordination:success:",
    "performance-degradation": "OPTIMIZATION_COMPLETED:performance:validation:",
    "data-integrity": "DATA_RECOVERY_COMPLETED:coordination:validation:",
    "network-partition": "NETWORK_RECOVERY_COMPLETED:network:restoration:",
    "usage-exhaustion": "EMERGENCY_RESPONSE_COMPLETED:system:validation:",
    "rate-limit": "EMERGENCY_RESPONSE_COMPLETED:system:validation:",
}


@pytest.fixture(autouse=True)
def no_agent_host_survives(tmp_path: Path) -> Iterator[None]:
    """A drill on real processes starts agent hosts in sessions of their own (they
    outlive a killed console, to be adopted by the next one): whatever the test's
    outcome, none of this test's is left running, and one left by a console that
    exited is an error of the test."""
    yield
    left = kill_agent_hosts_under(tmp_path)
    assert not left, f"agent host(s) still running after the test (killed now): {left}"


def drill(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        opsdeck_cmd("drill", *args), input=stdin, capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_drill_validates(name: str, tmp_path: Path) -> None:
    db = tmp_path / f"{name}.db"
    p = drill(name, "--db", str(db), "--quiet")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    lines = p.stdout.splitlines()
    done = [ln for ln in lines if ln.startswith(COMPLETION[name])]
    assert done, "the scenario's completion event is printed"
    data = json.loads(done[0].split(":", 3)[3])
    assert data["incident_id"] == "INC-0001"
    seen = set()
    for ln in lines:
        head = ln.split(":", 1)[0]
        if head in SEED_FIELDS:
            seen.add(head)
            assert SEED_FIELDS[head] <= set(json.loads(ln.split(":", 3)[3])), ln[:200]
    assert len(seen) == 2, "the scenario's strategy and completion events, with the seed's fields"
    assert "# drill " + name + ": VALIDATED" in p.stdout
    latency = next(ln for ln in lines if ln.startswith("# detection latency:"))
    recovery = next(ln for ln in lines if ln.startswith("# recovery time"))
    assert "n/a" not in latency and "n/a" not in recovery
    assert "# invariants: ok" in p.stdout
    assert "# fault confirmed independently: yes" in p.stdout
    # The database is left behind and verifies (the chain; checkpoints of corrupted
    # state are reported, as they should be, by `opsdeck verify`).
    v = subprocess.run(
        opsdeck_cmd("verify", "--db", str(db), "--json"), capture_output=True, text=True, cwd=REPO, timeout=60
    )
    rep = json.loads(v.stdout)
    assert rep["first_bad_seq"] is None


@pytest.mark.slow
def test_manual_approval_from_stdin(tmp_path: Path) -> None:
    p = drill(
        "resource-exhaustion", "--approve", "manual", "--quiet", stdin="# operator\n/incident approve PLAN-0001\n"
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    approved = [ln for ln in p.stdout.splitlines() if ln.startswith("PLAN_APPROVED:")]
    assert approved and json.loads(approved[0].split(":", 3)[3])["by"] == "operator:stdin"


@pytest.mark.slow
def test_manual_rejection_fails_the_drill(tmp_path: Path) -> None:
    p = drill("resource-exhaustion", "--approve", "manual", "--quiet", stdin="/incident reject PLAN-0001\n")
    assert p.returncode == 1
    assert "NOT VALIDATED" in p.stdout and "rejected" in p.stdout
    assert not [
        ln for ln in p.stdout.splitlines() if ln.startswith("PLAN_STEP_STARTED:") and "emergency-reallocation" in ln
    ]


@pytest.mark.slow
def test_manual_without_decision_does_not_hang() -> None:
    p = drill("resource-exhaustion", "--approve", "manual", "--quiet", stdin="")
    assert p.returncode == 1
    assert "stdin closed" in p.stderr


@pytest.mark.slow
def test_unknown_drill_is_a_clear_error() -> None:
    p = drill("meteor-strike")
    assert p.returncode == 2 and "invalid choice" in p.stderr


@pytest.mark.slow
def test_drill_on_an_idle_fleet_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "done.db"
    subprocess.run(
        opsdeck_cmd("demo", "--headless", "--for", "8000", "--db", str(db)),
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    p = drill("agent-cascade", "--db", str(db), "--quiet")
    assert p.returncode == 2
    assert "no work left" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", ["agent-cascade", "network-partition", "data-integrity"])
def test_drill_on_real_processes_validates(name: str, tmp_path: Path) -> None:
    """The fault for real (SIGKILL / SIGSTOP of agent hosts, a checkpoint damaged
    through SQLite) on the local runtime; the same detectors, plans and validations.
    The local runtime replaces each killed host itself and the interrupted tasks run
    again there before the cascade is detected: that incident is recovered without
    the plan (its agents ran none of the work), not validated."""
    db = tmp_path / f"{name}.db"
    p = subprocess.run(
        opsdeck_cmd("drill", name, "--runtime", "local", "--db", str(db), "--quiet", "--budget", "120"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
    )
    completions = [ln for ln in p.stdout.splitlines() if ln.startswith(COMPLETION[name])]
    if name == "agent-cascade":
        assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-2000:]
        assert f"# drill {name}: NOT VALIDATED (resolved" in p.stdout and "wall-clock" in p.stdout
        resolved = [
            json.loads(ln.split(":", 3)[3]) for ln in p.stdout.splitlines() if ln.startswith("INCIDENT_RESOLVED:")
        ]
        assert [r["outcome"]["result"] for r in resolved] == ["recovered_without_plan"], resolved
        assert not resolved[0]["outcome"]["validations"]["cascade_recovered"]["credit"]["on_plan_agents"]
        assert not completions
    else:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
        assert f"# drill {name}: VALIDATED" in p.stdout and "wall-clock" in p.stdout
        assert completions
    injected = [
        json.loads(ln.split(":", 3)[3]) for ln in p.stdout.splitlines() if ln.startswith("DRILL_FAULT_INJECTED:")
    ]
    assert injected
    # Confirmed from outside the injection: the process table (killed hosts gone,
    # cut-off hosts in state T), verification and a replay for the damaged data.
    confirmed = [
        json.loads(ln.split(":", 3)[3]) for ln in p.stdout.splitlines() if ln.startswith("DRILL_FAULT_CONFIRMED:")
    ]
    assert confirmed and confirmed[0]["confirmed"] is True
    checks = {"agent-cascade": "gone", "network-partition": "cut_off", "data-integrity": "fails_verify"}[name]
    assert confirmed[0][checks], confirmed[0]
    v = subprocess.run(
        opsdeck_cmd("verify", "--db", str(db), "--json"), capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert json.loads(v.stdout)["first_bad_seq"] is None


@pytest.mark.slow
def test_drills_that_need_the_simulation_say_so_on_the_local_runtime() -> None:
    p = drill("resource-exhaustion", "--runtime", "local", "--quiet")
    assert p.returncode == 2 and "simulated runtime only" in p.stderr and "Traceback" not in p.stderr

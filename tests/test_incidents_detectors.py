"""Each detector fires on its scenario's fault and stays quiet on a healthy run of the
same length; its finding carries the seed's field names with measured values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.incidents.drills import start_drill
from core.incidents.kinds import SCENARIOS
from core.incidents.manager import IncidentManager
from core.session import memory_sim, open_sim

WARMUP = 900.0
WATCH = 1500.0

SEED_FIELDS = {
    "resource-exhaustion": (
        "RESOURCE_EXHAUSTION",
        {"error_type", "severity", "affected_workflows", "system_utilization"},
    ),
    "agent-cascade": ("AGENT_POOL_FAILURE", {"failed_agents", "affected_workflows", "failure_type", "impact"}),
    "performance-degradation": (
        "PERFORMANCE_DEGRADATION_DETECTED",
        {"degradation_rate", "affected_metrics", "confidence"},
    ),
    "data-integrity": (
        "DATA_INTEGRITY_ALERT",
        {"alert_type", "severity", "affected_workflows", "corruption_risk", "immediate_action_required"},
    ),
    "network-partition": (
        "COMMUNICATION_FAILURE",
        {"failure_type", "affected_agents", "coordination_impact", "auto_recovery"},
    ),
    "usage-exhaustion": (
        "RESOURCE_EXHAUSTION",
        {"error_type", "severity", "affected_workflows", "system_utilization", "usage"},
    ),
    "rate-limit": (
        "RESOURCE_EXHAUSTION",
        {"error_type", "severity", "affected_workflows", "system_utilization", "rate_limit"},
    ),
}


async def _engine(name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if name == "data-integrity":
        return await open_sim(tmp_path / f"{name}.db", seed=0, demo=True)
    return memory_sim(seed=0)


@pytest.mark.parametrize("name", SCENARIOS)
async def test_detector_fires_on_fault(name: str, tmp_path: Path) -> None:
    eng = await _engine(name, tmp_path)
    seen = []
    eng.subscribe(lambda ev: seen.append(ev) if ev.type == SEED_FIELDS[name][0] else None)
    drill = start_drill(eng, name, approve="manual", warmup_s=WARMUP)
    try:
        while eng.clock.now() < WARMUP + WATCH and drill.incident() is None:
            await drill.step()
        inc = drill.incident()
        assert inc is not None, f"{name}: not detected within {WATCH:g}s of the fault"
        assert inc.detected_at >= WARMUP
        assert seen and SEED_FIELDS[name][1] <= set(seen[0].data)
        assert inc.plans, "a plan is proposed with the incident"
        if name == "performance-degradation":
            assert 0.95 <= seen[0].data["confidence"] <= 1.0
            assert "efficiency" in seen[0].data["affected_metrics"]
        if name == "agent-cascade":
            assert sorted(seen[0].data["failed_agents"]) == sorted(drill.fault["fail_agents"])
        if name == "network-partition":
            assert sorted(seen[0].data["affected_agents"]) == sorted(drill.fault["partition"])
        if name == "data-integrity":
            assert drill.fault["workflow"] in seen[0].data["affected_workflows"]
    finally:
        await eng.close()


@pytest.mark.parametrize("name", SCENARIOS)
async def test_detector_quiet_on_healthy_run(name: str, tmp_path: Path) -> None:
    eng = await _engine(name, tmp_path)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=[name])
    try:
        while eng.clock.now() < WARMUP + WATCH:
            await eng.advance(eng.config.intervals.sample_s)
            await mgr.pump()
        assert eng.state.incidents == {}
    finally:
        await eng.close()

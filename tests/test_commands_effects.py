"""Settings that something reads: each operation's effect checked by the state it
changes (checkpoint counts, detection, flushes, files, alerts, subscriptions), not
by its response text."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.config import Config
from core.engine import Engine
from core.incidents.manager import IncidentManager
from core.session import open_sim


async def _sim(tmp_path: Path, name: str = "e.db") -> Engine:
    return await open_sim(tmp_path / name, Config(), seed=0, demo=True)


def _count(eng: Engine, into: list[Any], type_: str) -> None:
    eng.subscribe(lambda ev: into.append(ev) if ev.type == type_ else None)


async def _checkpoint_gaps_in_an_hour(tmp_path: Path, name: str, command: str | None) -> list[float]:
    """Seconds between the engine's automatic checkpoints over a simulated hour."""
    eng = await _sim(tmp_path, name)
    try:
        await eng.advance(60)
        if command:
            res = await run_command(eng, command)
            assert res["status"] == "success", res
        seen: list[Any] = []
        _count(eng, seen, "CHECKPOINT_CREATED")
        for _ in range(120):  # an hour, in the 30 s steps of a running console
            await eng.advance(30)
        at = [60.0] + [e.ts for e in seen if e.data["kind"] in ("incremental", "phase_complete")]
        return [b - a for a, b in itertools.pairwise(at)]
    finally:
        await eng.close()


@pytest.mark.slow
async def test_integrity_monitoring_sets_the_checkpoint_interval_in_force(tmp_path: Path) -> None:
    plain = await _checkpoint_gaps_in_an_hour(tmp_path, "a.db", None)
    aggressive = await _checkpoint_gaps_in_an_hour(
        tmp_path,
        "b.db",
        '/coordination-hub enable-enhanced-integrity-monitoring \'{"checkpoint_frequency": "aggressive"}\'',
    )
    assert max(plain) > 330.0 and max(plain) <= 930.0  # phase completions, else every 900 s
    assert max(aggressive) <= 330.0  # every 300 s (to the 30 s step)
    assert len(aggressive) > len(plain)


async def _detected_after_damage(tmp_path: Path, name: str, command: str | None) -> float | None:
    """Damage a checkpoint through SQLite; how long until the detector opens an incident."""
    eng = await _sim(tmp_path, name)
    mgr = IncidentManager(eng, approve_mode="manual", scenarios=["data-integrity"])
    try:
        await eng.advance(400)
        if command:
            assert (await run_command(eng, command))["status"] == "success"
        await mgr.pump()  # a clean check
        await eng.advance(40)
        await mgr.pump()
        cp = await eng.checkpoint("incremental", "to be damaged")
        await eng.flush()
        db = eng.store.connection  # type: ignore[union-attr]
        row = await (await db.execute("SELECT state FROM checkpoints WHERE id=?", (cp,))).fetchone()
        snap = json.loads(row[0])
        snap["clock"] = -1.0
        await db.execute("UPDATE checkpoints SET state=? WHERE id=?", (json.dumps(snap), cp))
        await db.commit()
        damaged_at = eng.clock.now()
        for _ in range(200):
            await eng.advance(eng.config.intervals.sample_s)
            await mgr.pump()
            if eng.state.incidents:
                return eng.clock.now() - damaged_at
        return None
    finally:
        await eng.close()


async def test_every_operation_validation_finds_a_damaged_checkpoint_at_the_next_commit(tmp_path: Path) -> None:
    periodic = await _detected_after_damage(tmp_path, "p.db", None)
    each = await _detected_after_damage(
        tmp_path,
        "q.db",
        '/coordination-hub enable-enhanced-integrity-monitoring \'{"validation_frequency": "every_operation"}\'',
    )
    assert each is not None and each <= 5.0, each  # one sample: the next pump after the commit
    assert periodic is not None and periodic > 200.0, periodic  # the default 300 s full check


async def test_transaction_logging_commits_each_command_before_its_reply(tmp_path: Path) -> None:
    eng = await _sim(tmp_path)
    try:
        await eng.advance(120)
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 3}'")
        assert res["status"] == "success" and eng.unflushed > 0, "without it, commands wait for the group commit"
        await eng.flush()
        res = await run_command(
            eng,
            '/coordination-hub emergency-data-protection \'{"affected_workflow": "workflow_002", '
            '"immediate_actions": ["enable_transaction_logging"]}\'',
        )
        assert res["status"] == "success", res
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 4}'")
        assert res["status"] == "success" and eng.unflushed == 0
        head, _ = await eng.store.head()  # type: ignore[union-attr]
        assert head == eng.state.seq, "what the reply acknowledges is in the database"
    finally:
        await eng.close()


async def _degradation_detected(trigger: str | None) -> bool:
    """A 3 % efficiency fall over the window: under the default 5 % trigger no
    incident; with continuous learning's 2 % trigger, one."""
    from core.incidents.kinds.performance_degradation import PerformanceDegradationDetector
    from core.session import memory_sim

    eng = memory_sim(seed=0, demo=False)
    if trigger:
        res = await run_command(
            eng,
            "/performance-monitor enable-continuous-learning "
            f'\'{{"auto_optimization_triggers": ["performance_degradation_{trigger}_percent"]}}\'',
        )
        assert res["status"] == "success", res
    det = PerformanceDegradationDetector(eng)
    series = eng.telemetry
    for i in range(120):
        t = i * 30.0
        series.record(t, "efficiency", "system", 1.0 - 0.03 * i / 119 + (0.002 if i % 2 else -0.002))
    return det.check(3570.0) is not None


async def test_continuous_learning_triggers_are_the_ones_the_detector_uses() -> None:
    assert not await _degradation_detected(None)
    assert await _degradation_detected("2")


async def test_continuous_learning_utilisation_trigger_raises_alerts() -> None:
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    seen: list[Any] = []
    _count(eng, seen, "RESOURCE_THRESHOLD")
    await eng.advance(600)
    assert not [e for e in seen if e.data["monitor"] == "auto_optimization"]
    res = await run_command(
        eng,
        "/performance-monitor enable-continuous-learning "
        '\'{"auto_optimization_triggers": ["resource_utilization_above_1_percent"]}\'',
    )
    assert res["status"] == "success", res
    for _ in range(4):
        await eng.advance(5)
    alerts = [e for e in seen if e.data["monitor"] == "auto_optimization"]
    assert alerts and alerts[0].data["threshold"] == 1.0


@pytest.mark.slow
async def test_a_subscription_is_delivered_to_get_events_and_the_console(tmp_path: Path) -> None:
    from tests.console_support import make_app, settle

    app = make_app(tmp_path / "s.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.link_opened()
        eng = app.host.engine
        await settle(app, pilot, 60)
        res = await run_command(
            eng, '/coordination-hub subscribe-event \'{"name": "ops", "types": ["WORKFLOW_PAUSED"]}\''
        )
        assert res["status"] == "success", res
        await run_command(eng, "/coordination-hub pause workflow_003")
        await run_command(eng, "/coordination-hub resume workflow_003")
        await settle(app, pilot)
        from tests.console_support import came_true

        def ops_notes() -> list:  # type: ignore[type-arg]
            return [n for n in app._notifications if (n.title or "").startswith("subscription ops")]

        assert await came_true(pilot, lambda: bool(ops_notes()), 10)  # a notification is a message: wait for it
        notes = ops_notes()
        assert len(notes) == 1 and "WORKFLOW_PAUSED" in notes[0].message
        got = await run_command(eng, '/coordination-hub get-events \'{"subscription": "ops"}\'')
        assert got["status"] == "success", got
        lines = [r["line"] for r in got["result"]["events"]]
        assert lines and all(ln.startswith("WORKFLOW_PAUSED:") for ln in lines)
        missing = await run_command(eng, '/coordination-hub get-events \'{"subscription": "nobody"}\'')
        assert missing["error"]["code"] == "SUBSCRIPTION_NOT_FOUND"


async def _time_to_unreachable(health: bool) -> float:
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    await eng.advance(300)
    if health:
        res = await run_command(
            eng, "/resource-manager update-agent-management '{\"health_monitoring_enhancements\": true}'"
        )
        assert res["status"] == "success", res
    await eng.advance(60)
    a = sorted(x.id for x in eng.state.agents.values() if x.status.value == "busy")[0]
    eng.runtime.partition([a])  # type: ignore[union-attr]
    t0 = eng.clock.now()
    while eng.state.agents[a].status.value != "unreachable":
        assert eng.clock.now() - t0 < 600
        await eng.advance(5)
    return eng.clock.now() - t0


async def test_health_checks_find_a_silent_agent_sooner() -> None:
    plain = await _time_to_unreachable(False)
    checked = await _time_to_unreachable(True)
    assert checked <= 15 * 2.5 + 5 < plain, (checked, plain)


async def _partition_one(command: str | None) -> tuple[list[Any], str, str]:
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    await eng.advance(300)
    if command:
        res = await run_command(eng, command)
        assert res["status"] == "success", res
    seen: list[Any] = []
    eng.subscribe(
        lambda ev: (
            seen.append(ev) if ev.type in ("AGENT_PERFORMANCE_ALERT", "AGENT_TIMEOUT", "TASK_REASSIGNED") else None
        )
    )
    a = sorted(x.id for x in eng.state.agents.values() if x.status.value == "busy")[0]
    task = eng.state.agents[a].current_task
    eng.runtime.partition([a])  # type: ignore[union-attr]
    for _ in range(60):
        await eng.advance(5)
    return seen, a, task  # type: ignore[return-value]


async def test_network_monitoring_predicts_and_failover_moves_work() -> None:
    seen, a, task = await _partition_one(None)
    assert not [e for e in seen if e.type in ("AGENT_PERFORMANCE_ALERT", "TASK_REASSIGNED")], "nothing moves by itself"
    seen, a, task = await _partition_one(
        "/performance-monitor network-resilience-monitoring "
        '\'{"failure_prediction": "enabled", "auto_adaptation": "immediate"}\''
    )
    kinds = [(e.type, e.data.get("agent") or e.data.get("from")) for e in seen]
    assert kinds.index(("AGENT_PERFORMANCE_ALERT", a)) < kinds.index(("AGENT_TIMEOUT", a)), (
        "the late heartbeat is flagged first"
    )
    assert [e.data["task"] for e in seen if e.type == "TASK_REASSIGNED" and e.data["from"] == a] == [task]
    seen, a, task = await _partition_one(
        "/coordination-hub implement-network-resilience "
        '\'{"resilience_enhancements": ["automatic_failover_mechanisms"]}\''
    )
    assert [e.data["task"] for e in seen if e.type == "TASK_REASSIGNED" and e.data["from"] == a] == [task]


async def _backed_off_after_slowdown(monitor: bool) -> tuple[set[str], str]:
    from core.session import memory_sim

    eng = memory_sim(seed=0)
    await eng.advance(300)
    slow = sorted(x.id for x in eng.state.agents.values() if x.status.value == "busy")[0]
    eng.runtime.slow_agent(slow, 3.0)  # type: ignore[union-attr]
    if monitor:
        res = await run_command(
            eng, '/performance-monitor real-time-optimization-monitoring \'{"adaptive_tuning": "enabled"}\''
        )
        assert res["status"] == "success", res
    for _ in range(120):
        await eng.advance(15)
    now = eng.clock.now()
    return {a.id for a in eng.state.agents.values() if a.backoff_until is not None and a.backoff_until > now}, slow


async def test_adaptive_tuning_takes_an_agent_that_falls_behind_out_of_dispatch() -> None:
    off, _ = await _backed_off_after_slowdown(False)
    assert off == set()
    off, slow = await _backed_off_after_slowdown(True)
    assert off == {slow}


async def test_agent_autonomy_keeps_tasks_on_isolated_agents() -> None:
    """With agent_autonomy_increase the standing reassignment leaves an isolated
    agent's task where it is; without it, the task moves."""
    from core.session import memory_sim

    async def run(adaptations: list[str]) -> tuple[str, str | None, str]:
        eng = memory_sim(seed=0)
        await eng.advance(300)
        a = sorted(x.id for x in eng.state.agents.values() if x.status.value == "busy")[0]
        task = eng.state.agents[a].current_task
        assert task is not None
        eng.runtime.partition([a])  # type: ignore[union-attr]
        while eng.state.agents[a].status.value != "unreachable":
            await eng.advance(5)
        body = json.dumps({"coordination_adaptations": [{"adaptation": x} for x in adaptations]})
        assert (await run_command(eng, f"/coordination-hub activate-distributed-protocols '{body}'"))[
            "status"
        ] == "success"
        assert (
            await run_command(eng, "/coordination-hub communication-redundancy-activation '{\"reassign_after\": 30}'")
        )["status"] == "success"
        for _ in range(24):
            await eng.advance(5)
        return a, eng.state.tasks[task].agent, task

    a, holder, _ = await run(["agent_autonomy_increase"])
    assert holder == a, "kept running on the isolated agent"
    a, holder, _ = await run([])
    assert holder != a


async def test_dependency_recovery_monitoring_raises_alerts() -> None:
    from core.session import memory_sim

    async def alerts(with_monitoring: bool) -> list[Any]:
        eng = memory_sim(seed=0)
        await eng.advance(120)
        if with_monitoring:
            res = await run_command(
                eng,
                '/coordination-hub execute-dependency-recovery \'{"recovery_actions": ['
                '{"action": "enhanced_monitoring_activation", "scope": "recovered_workflows"}]}\'',
            )
            assert res["status"] == "success", res
        seen: list[Any] = []
        _count(eng, seen, "RESOURCE_THRESHOLD")
        eng.runtime.load_spike(6.0, 12.0, 60.0)  # type: ignore[union-attr]
        for _ in range(12):
            await eng.advance(5)
        return [e for e in seen if e.data["monitor"] == "recovered_workflows"]

    assert await alerts(False) == []
    assert {e.data["metric"] for e in await alerts(True)} == {"cpu", "memory"}


def test_threshold_alert_summary_gives_the_percent_unit() -> None:
    """RESOURCE_THRESHOLD's watched series are percentages: the log line says so, and an
    event from outside with a non-number keeps its value as it is."""
    from core.event_types import RESOURCE_THRESHOLD
    from core.events import Event

    def line(data: dict[str, Any]) -> str:
        ev = Event(seq=1, ts=0.0, type="RESOURCE_THRESHOLD", component="resource", scope="monitoring", data=data)
        return RESOURCE_THRESHOLD.summary(ev)

    assert line({"metric": "memory", "value": 69.694, "threshold": 63.75, "monitor": "m"}) == (
        "memory at 69.7 %, over its threshold 63.75 % (m monitor)"
    )
    assert line({"metric": "cpu", "value": "high", "threshold": 80}) == "cpu at high, over its threshold 80 %"

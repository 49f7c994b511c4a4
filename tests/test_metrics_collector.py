"""The metrics collector in process: every figure is checked against the event log."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.engine import Engine
from core.events import Event
from core.host.door import start_counting
from core.host.metrics import exposition, registry_for
from core.models import TaskStatus
from core.projection import State
from core.session import open_sim
from core.telemetry import TaskTimings


def scrape(engine: Engine) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value} for every sample of one scrape."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(exposition(registry_for(engine)).decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def count(engine: Engine, type_: str) -> int:
    assert engine.store is not None
    return (await engine.store.count_types([type_], 10**12)).get(type_, 0)


@pytest.mark.slow
async def test_counts_equal_the_log_before_and_after_the_collector_starts(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True, recurring=True)
    await eng.advance(2 * 3600)  # history the collector did not see
    await start_counting(eng)
    first = scrape(eng)
    assert first["opsdeck_workflow_completed_total"][()] == await count(eng, "WORKFLOW_COMPLETED") > 0
    await eng.advance(2 * 3600)
    await eng.flush()
    m = scrape(eng)
    head, _ = await eng.store.head()  # type: ignore[union-attr]
    assert m["opsdeck_events_total"][()] == head == eng.state.seq
    assert m["opsdeck_workflow_completed_total"][()] == await count(eng, "WORKFLOW_COMPLETED")
    assert m["opsdeck_task_completed_total"][()] == await count(eng, "TASK_COMPLETED")
    assert m["opsdeck_task_completed_total"][()] > first["opsdeck_task_completed_total"][()]
    # Workflows by status are the projection's, live and finished.
    for status in ("running", "completed"):
        n = sum(1 for w in eng.state.all_workflows() if w.status.value == status)
        assert m["opsdeck_workflows"][(("status", status),)] == n
    assert m["opsdeck_workflows"][(("status", "completed"),)] > 0
    await eng.close()


async def test_task_failures_by_reason_survive_a_reopen(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await start_counting(eng)
    await eng.advance(60)
    running = [t for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING]
    a, b = running[0], running[1]
    eng.task_failed(a.agent or "", a.id, "exit status 3")  # what a runtime reports
    eng.task_failed(b.agent or "", b.id, "timeout after 5s")
    await eng.flush()
    m = scrape(eng)
    assert m["opsdeck_task_failed_total"][(("reason", "exit_status"),)] == 1
    assert m["opsdeck_task_failed_total"][(("reason", "timeout"),)] == 1
    assert m["opsdeck_task_failed_total"][(("reason", "signal"),)] == 0
    await eng.close()

    again = await open_sim(db_path, demo=True)
    await start_counting(again)  # seeded from the store this time
    m2 = scrape(again)
    assert m2["opsdeck_task_failed_total"][(("reason", "exit_status"),)] == 1
    assert m2["opsdeck_task_failed_total"][(("reason", "timeout"),)] == 1
    assert m2["opsdeck_events_total"][()] == again.state.seq
    await again.close()


async def test_task_histograms_match_the_events(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    start = eng.state.seq
    await start_counting(eng)
    await eng.advance(3 * 3600)
    await eng.flush()
    m = scrape(eng)
    events = await eng.store.read_events(since=start)  # type: ignore[union-attr]
    assigned: dict[str, float] = {}
    runs: list[float] = []  # a completed run's duration_s; a failed one's time since its assignment
    for ev in events:
        if ev.type == "TASK_ASSIGNED":
            assigned[ev.data["task"]] = ev.ts
        elif ev.type == "TASK_COMPLETED" and "duration_s" in ev.data:
            runs.append(ev.data["duration_s"])
        elif ev.type in ("TASK_COMPLETED", "TASK_FAILED") and ev.data["task"] in assigned:
            runs.append(ev.ts - assigned[ev.data["task"]])
    n_assigned = sum(1 for ev in events if ev.type == "TASK_ASSIGNED")
    assert m["opsdeck_task_schedule_to_start_seconds_count"][()] == n_assigned > 0
    assert m["opsdeck_task_execution_seconds_count"][()] == len(runs) > 0
    assert abs(m["opsdeck_task_execution_seconds_sum"][()] - sum(runs)) < 1e-6 * max(sum(runs), 1.0)
    # Buckets are cumulative and end at the count.
    buckets = sorted(
        ((float(dict(k)["le"]), v) for k, v in m["opsdeck_task_execution_seconds_bucket"].items()), key=lambda x: x[0]
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == len(runs)
    assert m["opsdeck_store_commit_seconds_count"][()] >= 1
    # Slots: idle agents per specialization, from the projection.
    idle_impl = sum(
        1 for a in eng.state.agents.values() if a.status.value == "idle" and "implementation" in a.specializations
    )
    assert m["opsdeck_task_slots_available"][(("specialization", "implementation"),)] == idle_impl
    await eng.close()


async def test_ready_since_follows_what_each_task_end_made_ready(db_path: Path) -> None:
    """A task's end marks what it made ready (its retry, the dependents it was the last
    dependency of) as the scan of every ready task of the workflows concerned did."""

    class Scan(TaskTimings):  # the reference: each end re-marks its workflows' ready tasks
        def _mark_tasks(self, state: State, keys: Iterable[str], now: float) -> None:
            self._mark_ready(state, {state.tasks[k].workflow for k in keys if k in state.tasks}, now)

    eng = await open_sim(db_path, demo=True)
    fast, scan = TaskTimings(), Scan()
    fast.start(eng.state, eng.clock.now())
    scan.start(eng.state, eng.clock.now())
    mismatches: list[str] = []
    made_ready = 0

    def both(ev: Event) -> None:
        nonlocal made_ready
        before = len(fast.ready_since)
        fast.observe(eng.state, ev)
        scan.observe(eng.state, ev)
        if ev.type == "TASK_COMPLETED" and len(fast.ready_since) > before:
            made_ready += 1
        if fast.ready_since != scan.ready_since:
            mismatches.append(f"{ev.seq} {ev.type}")

    eng.observe(both)
    try:
        await eng.advance(60)
        running = [t for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING]
        eng.task_failed(running[0].agent or "", running[0].id, "exit status 3")  # retried by the demo's policy
        await eng.advance(3 * 3600)
        await eng.flush()
    finally:
        await eng.close()
    assert not mismatches, mismatches[:5]
    assert made_ready > 0  # some end made a dependent ready
    assert fast.schedule_to_start.count == scan.schedule_to_start.count > 0
    assert fast.schedule_to_start.sum == scan.schedule_to_start.sum


async def test_execution_seconds_of_real_runs_are_their_hosts_measure(tmp_path: Path) -> None:
    """Real runs on the local runtime: the histogram holds each TASK_COMPLETED's
    ``duration_s`` (the host's elapsed time), not the time since the task's assignment
    (which adds the start's way to the host and the report's way back); a failed run,
    which has no such figure, counts from its assignment to its end."""
    from tests.local_harness import drive, header, open_text, task_toml, wf_status, workflow_toml

    text = header() + workflow_toml(
        "m",
        *(task_toml(f"t{i}", ["sleep", "0.2"], "shell") for i in range(3)),
        task_toml("bad", ["sh", "-c", "exit 3"], "shell", retries=0),
        allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2},
    )
    engine, runtime, rec = await open_text(tmp_path / "r.db", text, tmp_path)
    try:
        await start_counting(engine)
        await drive(engine, lambda: len(rec.of("TASK_COMPLETED")) == 3 and rec.of("TASK_FAILED"), timeout=30)
        m = scrape(engine)
    finally:
        await runtime.shutdown()
        await engine.close()
    assert wf_status(engine, "m") == "failed"
    assigned = {e.data["task"]: e.ts for e in rec.of("TASK_ASSIGNED")}
    ran = [e.data["duration_s"] for e in rec.of("TASK_COMPLETED")]
    since_assigned = [e.ts - assigned[e.data["task"]] for e in rec.of("TASK_COMPLETED")]
    (failed,) = rec.of("TASK_FAILED")
    failed_s = failed.ts - assigned[failed.data["task"]]
    assert m["opsdeck_task_execution_seconds_count"][()] == 4
    assert m["opsdeck_task_execution_seconds_sum"][()] == pytest.approx(sum(ran) + failed_s, abs=1e-9)
    # Must not: a completed run counted from its assignment (longer than the host's measure).
    assert all(s > r for s, r in zip(since_assigned, ran, strict=True)), (since_assigned, ran)
    assert m["opsdeck_task_execution_seconds_sum"][()] < sum(since_assigned) + failed_s


@pytest.mark.parametrize(
    "said", ["-5", "true", "1e400", "NaN", "1" + "0" * 400], ids=["neg", "bool", "inf", "nan", "bigint"]
)
async def test_a_completion_whose_duration_is_no_number_of_seconds_counts_from_its_assignment(said: str) -> None:
    """An injected TASK_COMPLETED line's duration_s that is not a number of seconds (a
    negative, a bool, inf, NaN, an int beyond a double's range) is not the run's time:
    the histogram counts it from its assignment (main: -5, 1, inf, nan, 1e400's
    OverflowError in the sum)."""
    from core.events import parse_line
    from tests.test_late_starts import ASSIGNED, NOW, TASK, assigned_run

    eng, _rec, agent = await assigned_run()
    await start_counting(eng)
    line = f'TASK_COMPLETED:agent:execution:{{"task":"{TASK}","agent":"{agent}","workflow_id":"w","duration_s":{said}}}'
    eng.inject(parse_line(line))
    h = eng.telemetry.tasks.execution
    assert (h.count, h.sum, type(h.sum)) == (1, NOW - ASSIGNED, float)

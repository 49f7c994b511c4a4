"""Projection = fold(events): checkpoint + replay equals a fold from the start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import Engine, EngineError
from core.engine.log import EventLog
from core.event_types import EVENTS
from core.models import Resources
from core.projection import State
from core.projection_history import kept_rows
from core.session import memory_sim, open_sim

OPS = st.lists(
    st.tuples(
        st.sampled_from(["advance", "pause", "resume", "fail", "alloc", "reserve", "add", "release", "slow"]),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=25,
)


def _drive(ops: list[tuple[str, int]]) -> Engine:
    """Random valid operations on the demo fleet; invalid ones are refused and skipped."""
    eng = memory_sim(seed=7)
    loop = asyncio.new_event_loop()
    try:
        for op, n in ops:
            wfs = eng.state.all_workflow_ids()
            wf = wfs[n % len(wfs)]
            agents = sorted(eng.state.agents)
            try:
                if op == "advance":
                    loop.run_until_complete(eng.advance(30 + n % 600))
                elif op == "pause":
                    eng.pause_workflow(wf)
                elif op == "resume":
                    eng.resume_workflow(wf)
                elif op == "fail":
                    eng.runtime.fail_agent(agents[n % len(agents)])  # type: ignore[union-attr]
                elif op == "alloc":
                    eng.set_allocation(wf, Resources(cpu_cores=1 + n % 4, memory_gb=1 + n % 6, agents=1 + n % 4))
                elif op == "reserve":
                    eng.reserve(wf, Resources(cpu_cores=n % 3, memory_gb=n % 4, agents=n % 2) if n % 2 else None)
                elif op == "add":
                    eng.add_agent(sorted(eng.state.pools)[n % 3])
                elif op == "release":
                    running = sorted(k for k, t in eng.state.tasks.items() if t.agent)
                    if running:
                        eng.release_task(running[n % len(running)])
                elif op == "slow":
                    eng.runtime.slow_agent(agents[n % len(agents)], 1 + n % 5)  # type: ignore[union-attr]
            except EngineError:
                pass
        loop.run_until_complete(eng.advance(60))
    finally:
        loop.close()
    return eng


def _events(eng: Engine) -> list:  # type: ignore[type-arg]
    events = []
    eng.subscribe(events.append)
    return events


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, cut=st.floats(0, 1))
def test_checkpoint_plus_replay_equals_full_fold(ops: list[tuple[str, int]], cut: float) -> None:
    # Record every event the engine emits, from the very first.
    captured: list = []  # type: ignore[type-arg]
    import core.session as session

    real_emit = EventLog.emit  # the facade's and the bridge's emits both end there

    def recording_emit(self, *a, **k):  # type: ignore[no-untyped-def]
        ev = real_emit(self, *a, **k)
        captured.append(ev)
        return ev

    EventLog.emit = recording_emit  # type: ignore[method-assign]
    try:
        eng = _drive(ops)
    finally:
        EventLog.emit = real_emit  # type: ignore[method-assign]
    assert session  # imported for the engine factory
    full = State(EVENTS.folds)
    for ev in captured:
        full.apply(ev)
    assert full.state_hash() == eng.state.state_hash()
    k = int(cut * len(captured))
    partial = State(EVENTS.folds)
    for ev in captured[:k]:
        partial.apply(ev)
    # A compact snapshot with the history entries a store keeps beside it, and a whole one.
    kept = kept_rows(partial.finished, partial.checkpoints)
    restored = State.from_snapshot(EVENTS.folds, partial.snapshot(), history=kept)
    whole = State.from_snapshot(EVENTS.folds, partial.snapshot(full=True))
    for ev in captured[k:]:
        restored.apply(ev)
        whole.apply(ev)
    assert restored.state_hash() == whole.state_hash() == full.state_hash()


@pytest.mark.slow
async def test_restart_restores_the_state_mid_flight(db_path: Path) -> None:
    eng = await open_sim(db_path, demo=True)
    await eng.advance(1500)
    await eng.checkpoint("manual", "mid")
    await eng.advance(700)
    running = sorted(k for k, t in eng.state.tasks.items() if t.status.value == "running")
    assert running, "the fleet should be mid-flight"
    want = eng.state.state_hash()
    await eng.close()
    again = await Engine.open(db_path)
    assert again.state.state_hash() == want
    assert sorted(k for k, t in again.state.tasks.items() if t.status.value == "running") == running
    await again.close()
    # And it carries on: the restarted sim finishes the running tasks.
    resumed = await open_sim(db_path)
    await resumed.advance(4 * 3600)
    statuses = {w.status.value for w in resumed.state.all_workflows()}
    assert statuses == {"completed"}
    done = [t for t in resumed.state.tasks.values() if t.status.value == "completed"]
    assert len(done) == len(resumed.state.tasks)
    await resumed.close()


@pytest.mark.slow
async def test_same_seed_same_log_byte_for_byte(tmp_path: Path) -> None:
    import sqlite3

    dumps = []
    for name in ("a.db", "b.db"):
        eng = await open_sim(tmp_path / name, demo=True, seed=11)
        eng.runtime.load_spike(3.0, 2.0, 600)  # type: ignore[union-attr]
        await eng.advance(1800)
        eng.runtime.fail_agent("agent_003")  # type: ignore[union-attr]
        await eng.advance(1800)
        await eng.close()
        con = sqlite3.connect(tmp_path / name)
        dumps.append(con.execute("SELECT * FROM events ORDER BY seq").fetchall())
        con.close()
    assert len(dumps[0]) > 500
    assert dumps[0] == dumps[1]
    other = await open_sim(tmp_path / "c.db", demo=True, seed=12)
    await other.advance(1800)
    await other.close()
    con = sqlite3.connect(tmp_path / "c.db")
    assert con.execute("SELECT * FROM events ORDER BY seq").fetchall() != dumps[0][: len(dumps[0])]


def test_an_event_type_is_declared_once() -> None:
    """A second declaration of a type would make replay depend on which one won."""
    import pytest

    from core import task_reducers
    from core.event_types import EVENTS, TASK_COMPLETED, EventType

    assert "LEARNING_RECORDED" in EVENTS.folds and "INCIDENT_OPENED" in EVENTS.folds
    with pytest.raises(ValueError, match="declared twice"):
        EVENTS.declare(EventType("TASK_COMPLETED", "agent", fold=lambda s, ev: None))
    assert EVENTS.folds["TASK_COMPLETED"] is task_reducers.task_completed is TASK_COMPLETED.fold


def test_a_staged_step_dumps_what_it_was_planned_with() -> None:
    """A resumption's steps are typed, and dump only the fields they were planned with
    (a log replays to the hashes its checkpoints recorded): no limit named is not a lift."""
    import pydantic

    from core.models import Resources, StagedStep

    lift = StagedStep(stage=1, workflow="w", limit=None, lift=True, what="lift")
    grow = StagedStep(stage=1, workflow="w", allocation=Resources(agents=2), what="grow")
    assert lift.sets_limit and not grow.sets_limit
    assert lift.model_dump() == {"stage": 1, "workflow": "w", "limit": None, "lift": True, "what": "lift"}
    assert "limit" not in grow.model_dump() and grow.model_dump()["allocation"]["agents"] == 2
    again = StagedStep.model_validate(grow.model_dump())
    assert again == grow and not again.sets_limit
    with pytest.raises(pydantic.ValidationError):
        StagedStep.model_validate({"stage": 1, "workflow": "w", "what": "x", "limt": None})


def test_an_incident_outcome_is_typed_and_dumps_as_it_was_written() -> None:
    """An incident's and a plan's outcome are typed (readers use attributes) and fold and
    snapshot to exactly the dict the event carried: the fields set, an int left an int, a
    key of an older log kept; so a log replays to the hashes its checkpoints recorded."""
    from core.event_types import INCIDENT_OPENED, INCIDENT_RESOLVED, PLAN_ABORTED, PLAN_COMPLETED, PLAN_PROPOSED
    from core.events import Event
    from core.incident_models import Incident, IncidentOutcome, Plan, PlanOutcome

    s = State(EVENTS.folds)
    inc = Incident(id="INC-1", scenario="toy", type="TOY", severity="high", detected_at=1.0)
    plan = Plan(id="P-1", incident_id="INC-1", scenario="toy", title="t", steps=[])
    written = {"validated": True, "result": "validated", "recovery_time_s": 12, "plan_id": "P-1", "old_key": [1]}
    done = {"validated": False, "result": "not_validated", "recovery_time_s": None}
    for i, (etype, data) in enumerate(
        [
            (INCIDENT_OPENED, {"incident": inc.model_dump(mode="json")}),
            (PLAN_PROPOSED, {"plan": plan.model_dump(mode="json")}),
            (PLAN_COMPLETED, {"plan_id": "P-1", "outcome": done}),
            (INCIDENT_RESOLVED, {"incident_id": "INC-1", "status": "resolved", "outcome": written}),
        ],
        start=1,
    ):
        s.apply(Event(i, float(i), etype.name, "incidents", "incident", data))
    out = s.incidents["INC-1"].outcome
    assert isinstance(out, IncidentOutcome) and out.validated is True and out.recovery_time_s == 12
    assert out.reason is None and out.quarantined_checkpoints is None  # not written: not there
    snap = s.snapshot()
    assert snap["incidents"]["INC-1"]["outcome"] == written
    assert type(snap["incidents"]["INC-1"]["outcome"]["recovery_time_s"]) is int
    assert snap["plans"]["P-1"]["outcome"] == done
    again = State.from_snapshot(EVENTS.folds, s.snapshot(full=True))
    assert again.state_hash() == s.state_hash()
    s.apply(Event(5, 5.0, PLAN_ABORTED.name, "incidents", "plan", {"plan_id": "P-1", "reason": "r"}))
    p = s.plans["P-1"].outcome
    assert isinstance(p, PlanOutcome) and p.reason == "r" and p.validated is False and p.rollback is None
    assert Incident(id="x", scenario="t", type="T", severity="low", detected_at=0.0).model_dump()["outcome"] == {}
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        IncidentOutcome.model_validate({"validated": "maybe"})  # a typed field refuses what it is not


def test_an_incident_s_evidence_is_kept_as_written_and_read_through_its_kind_s_typed_view() -> None:
    """The evidence dumps (and hashes) as the INCIDENT_OPENED event carried it, an older log's
    keys included; the finding and the progress at detection are typed, and each kind reads
    its own keys through its view (defaults for what was not written, types checked)."""
    import pydantic

    from core.incident_models import Incident
    from core.incidents.kinds.data_integrity import IntegrityEvidence

    written = {
        "finding": {"component": "coordination", "scope": "s", "data": {"n": 1}, "onset": 3},
        "progress_at_detection": {"w1": 0, "w2": 0.25},
        "bad_checkpoints": [2, 5],
        "segments": [{"checkpoint": 2, "resolution": "quarantined"}],
        "older_key": "kept",
    }
    inc = Incident.model_validate(
        {
            "id": "I",
            "scenario": "data-integrity",
            "type": "T",
            "severity": "high",
            "detected_at": 0.0,
            "evidence": written,
        }
    )
    dumped = inc.model_dump(mode="json")["evidence"]
    assert (
        dumped == written
        and type(dumped["finding"]["onset"]) is int
        and type(dumped["progress_at_detection"]["w1"]) is int
    )
    assert inc.evidence.finding is not None and inc.evidence.finding.component == "coordination"
    view = inc.evidence.of(IntegrityEvidence)
    assert view.bad_checkpoints == [2, 5] and view.segments[0]["resolution"] == "quarantined"
    assert view.bad_seqs == [] and view.first_bad_seq is None  # not written: the view's defaults
    with pytest.raises(pydantic.ValidationError):
        inc.evidence.model_copy(update={"bad_checkpoints": ["two"]}).of(IntegrityEvidence)

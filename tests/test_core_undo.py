"""Taking a command back: the journal restores what the command's folds changed.

A unit of work records, for each record a fold writes, its value before the first
write (core.journal); taking the unit back puts those values back and rebuilds the
touched workflows' derived indexes. Nothing copies the whole state, so a command
costs what it changes, whatever the size of the live state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.engine import Engine, EngineError
from core.event_types import COMMAND_EXECUTED, EVENTS
from core.events import Event
from core.journal import pre_image
from core.models import Resources, Task
from core.projection import State
from core.session import memory_sim, open_sim

READ_ONLY = "/resource-manager status"


def _engine(tasks: int) -> Engine:
    eng = memory_sim(demo=False)
    eng.create_pool("p", ["x"], 0, 4)
    if tasks:
        spec: list[dict[str, Any]] = [
            {"id": f"t{i}", "specialization": "x", "duration_s": 60, "cpu": 0, "memory_gb": 0} for i in range(tasks)
        ]
        eng.create_workflow(
            {
                "id": "w",
                "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 2},
                "phases": [{"name": "a", "tasks": spec}],
            }
        )
    return eng


def _derived(s: State) -> dict[str, Any]:
    """The scheduler's indexes, order-free where a rebuild may order them differently
    (a ready queue rebuilt lists its tasks in workflow order)."""
    return {
        "pending_deps": dict(s.pending_deps),
        "dependents": {k: sorted(v) for k, v in s.dependents.items()},
        "ready": {k: sorted(v) for k, v in s.ready.items()},
        "running_by_wf": {k: sorted(v) for k, v in s.running_by_wf.items()},
        "phase_left": dict(s.phase_left),
        "wf_left": dict(s.wf_left),
        "phase_started": sorted(s.phase_started),
        "active": sorted(s.active),
        "dispatch_order": list(s.dispatch_order),
        "order_keys": dict(s.order_keys),
        "queued": sorted(s.queued),
        "guaranteed": sorted(s.guaranteed),
    }


def _everything(s: State) -> tuple[Any, ...]:
    """The whole state as comparable values: the hashed snapshot (with checkpoint
    labels), the derived indexes and the archive rows waiting to be stored."""
    return (s.snapshot(checkpoint_labels=True), _derived(s), list(s.archive_out or []))


# -- every fold of a real run is taken back exactly ----------------------------------------


def _recorded_run() -> list[Event]:
    """The events of a demo fleet driven through pauses, failures, allocation changes,
    releases, a checkpoint and a rollback, cancellations and workflows that finish."""
    events: list[Event] = []
    eng = memory_sim(demo=False, seed=3)
    eng.subscribe(events.append)
    from core.demo import build_demo

    build_demo(eng, seed=3, duration_scale=0.3)

    async def drive() -> None:
        await eng.advance(120)
        wfs = sorted(w for w, v in eng.state.workflows.items() if v.status.value == "running")
        assert len(wfs) >= 2
        cp = await eng.checkpoint("manual", "before the changes")
        eng.pause_workflow(wfs[0])
        eng.set_allocation(wfs[1], Resources(cpu_cores=2, memory_gb=2, agents=1))
        eng.reserve(wfs[1], Resources(cpu_cores=1, memory_gb=1, agents=1))
        agents = sorted(eng.state.agents)
        eng.runtime.fail_agent(agents[0])  # type: ignore[union-attr]
        eng.add_agent(sorted(eng.state.pools)[0])
        running = sorted(k for k, t in eng.state.tasks.items() if t.agent)
        if running:
            eng.release_task(running[0])
        await eng.advance(300)
        eng.resume_workflow(wfs[0])
        eng.set_setting("undo_probe", {"a": [1, 2]})
        await eng.rollback(cp, reason="back to the checkpoint")
        await eng.advance(200)
        eng.cancel_workflow(sorted(eng.state.workflows)[-1])
        await eng.advance(4 * 3600)

    asyncio.run(drive())
    return events


def _drill_run() -> list[Event]:
    """The events of an incident drill whose plan is edited, approved and run to the end."""
    from core.demo import build_demo
    from core.incidents import decisions
    from core.incidents.drills import start_drill

    events: list[Event] = []
    eng = memory_sim(demo=False, seed=0)
    eng.subscribe(events.append)
    build_demo(eng, seed=0)

    async def drive() -> None:
        drill = start_drill(eng, "resource-exhaustion", approve="manual", warmup_s=300)
        while (p := drill.plan()) is None or not any(st.state == "proposed" for st in p.steps):
            await drill.step()
        cmds = [st.command for st in p.steps]
        decisions.edit(eng, p.id, [c for c in cmds if "gradual-resumption" not in c], actor="carol")
        decisions.approve(eng, p.id, actor="carol")
        end = eng.clock.now() + 4000
        while not drill.done and eng.clock.now() < end:
            await drill.step()
        assert drill.done

    asyncio.run(drive())
    return events


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[Event]]:
    return {"fleet": _recorded_run(), "drill": _drill_run()}


@pytest.mark.slow
@pytest.mark.parametrize("run", ["fleet", "drill"])
@pytest.mark.parametrize("window", [1, 9])
def test_every_fold_of_a_run_is_taken_back_exactly(recorded: dict[str, list[Event]], run: str, window: int) -> None:
    """Each window of consecutive events, folded inside a journal and taken back,
    leaves snapshot, derived indexes and archive rows exactly as before."""
    events = recorded[run]
    types = {ev.type for ev in events}
    needed = {
        "fleet": ("WORKFLOW_CREATED", "TASK_ASSIGNED", "TASK_COMPLETED", "STATE_RESTORED", "WORKFLOW_COMPLETED"),
        "drill": ("INCIDENT_OPENED", "PLAN_PROPOSED", "PLAN_EDITED", "PLAN_STEP_COMPLETED", "INCIDENT_RESOLVED"),
    }[run]
    for t in needed:
        assert t in types, (t, sorted(types))
    state = State(EVENTS.folds, collect_archive=True)
    i = 0
    while i < len(events):
        chunk = events[i : i + window]
        before = _everything(state)
        journal = state.begin_journal()
        for ev in chunk:
            state.apply(ev)
        state.undo_journal(journal)
        assert state.journal is None
        assert _everything(state) == before, [ev.type for ev in chunk]
        for ev in chunk:
            state.apply(ev)
        i += window


_COUNTERS_ONLY = {"COMMAND_EXECUTED"}
"""Folds that move only counters the journal saves when it begins."""
_VIA_HELPERS = ("changing(", "replacing(", "_hot(", "_step(", "_restore_workflow(")
"""What a fold calls to tell the journal what it writes (directly or through a helper that does)."""


def test_every_fold_tells_the_journal_what_it_writes() -> None:
    """The contract the journal rests on: a fold calls ``State.changing`` /
    ``State.replacing`` (or a helper that does) before it writes. A new fold that
    does not is named here (the run tests above only see the types their runs emit)."""
    import inspect

    silent = sorted(
        name
        for name, fold in EVENTS.folds.items()
        if name not in _COUNTERS_ONLY and not any(h in inspect.getsource(fold) for h in _VIA_HELPERS)
    )
    assert silent == [], f"folds that write without telling the journal: {silent}"


def test_a_kept_inner_journal_is_taken_back_by_the_outer_one() -> None:
    eng = _engine(3)
    before = _everything(eng.state)
    outer = eng.begin_unit()
    inner = eng.state.begin_journal()
    eng.create_pool("q", ["y"], 0, 2)
    eng.state.keep_journal(inner)
    eng.start_workflow("w")
    assert eng.end_unit(outer, keep=False)
    assert _everything(eng.state) == before


def test_a_kept_unit_stays_and_a_later_undo_does_not_reach_it() -> None:
    """What must not happen: a unit taken back undoing an earlier, kept one."""
    eng = _engine(3)
    unit = eng.begin_unit()
    eng.create_pool("q", ["y"], 0, 2)
    assert eng.end_unit(unit, keep=True)
    kept = _everything(eng.state)
    unit = eng.begin_unit()
    eng.start_workflow("w")
    eng.create_pool("r", ["y"], 0, 2)
    assert eng.end_unit(unit, keep=False)
    assert "q" in eng.state.pools and "r" not in eng.state.pools
    assert _everything(eng.state) == kept


def test_pre_image_shares_nothing_a_fold_changes_in_place() -> None:
    eng = _engine(3)
    t = eng.state.tasks["w/t0"]
    copy = pre_image(t)
    t.own_context().partial_results["x"] = 1
    t.depends_on.append("w/t1")
    t.status = t.status.RUNNING
    assert copy.context.partial_results == {} and copy.depends_on == [] and copy.status.value == "pending"
    # A task's own context (changed in place by folds) is copied too, down to its lists.
    again = pre_image(t)
    t.context.partial_results["x"] = 2
    t.context.last_output.append("more")
    assert again == pre_image(again) and again.context.partial_results == {"x": 1}
    assert again.context.last_output == [] and again.depends_on == ["w/t1"] and type(again) is type(t)
    wf = eng.state.workflows["w"]
    assert pre_image(wf).tasks is wf.tasks  # never changed in place once built: shared, not copied


def test_pre_image_copies_every_field_of_a_task_that_a_fold_could_change_in_place() -> None:
    """Every field of Task, those added later too: a field holding something mutable (here
    each holds a nested list, whatever its type says) is copied down to its inner values,
    so a copy of only the fields named today (depends_on, context) fails this."""
    t = Task("w/t", "w", "p", "s")
    names = [f.name for f in dataclasses.fields(Task)]
    for name in names:
        setattr(t, name, [[name]])
    copy = pre_image(t)
    assert type(copy) is Task and [f.name for f in dataclasses.fields(copy)] == names
    for name in names:
        value = getattr(t, name)
        value[0].append("changed in place")
        assert getattr(copy, name) == [[name]], name


def test_pre_image_of_a_task_subclass_keeps_its_class_and_shares_nothing() -> None:
    """The field-by-field copy is for Task itself: a subclass (with a field of its own)
    comes back as its own class, every field copied, not rebuilt as a plain Task."""

    @dataclasses.dataclass
    class Tagged(Task):
        tags: list[str] = dataclasses.field(default_factory=list)

    t = Tagged("w/t", "w", "p", "s", depends_on=["w/a"], tags=["x"])
    copy = pre_image(t)
    t.depends_on.append("w/b")
    t.tags.append("y")
    assert type(copy) is Tagged
    assert copy.depends_on == ["w/a"] and copy.tags == ["x"]


# -- commands that fail midway ------------------------------------------------------------


def _fail_after(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """``Engine.<name>`` does its work, then raises: the command fails midway."""
    real: Callable[..., Any] = getattr(Engine, name)

    if asyncio.iscoroutinefunction(real):

        async def broken_async(self: Engine, *a: Any, **k: Any) -> Any:
            await real(self, *a, **k)
            raise RuntimeError(f"injected failure after {name}")

        monkeypatch.setattr(Engine, name, broken_async)
    else:

        def broken(self: Engine, *a: Any, **k: Any) -> Any:
            real(self, *a, **k)
            raise RuntimeError(f"injected failure after {name}")

        monkeypatch.setattr(Engine, name, broken)


def _listen(eng: Engine) -> list[Event]:
    """The events the log hands its subscribers from now on (an engine without a store
    hands them a unit's events once the unit is kept; it chains nothing, so its
    ``head_hash`` is the genesis hash whatever it records)."""
    heard: list[Event] = []
    eng.subscribe(heard.append)
    return heard


async def _running_fleet() -> Engine:
    eng = memory_sim(seed=5, duration_scale=0.2)
    await eng.advance(90)
    assert any(t.agent for t in eng.state.tasks.values())
    return eng


NEW_WF = (
    '/coordination-hub create \'{"id": "fresh", "start": true, "phases": [{"name": "a", "tasks": '
    '[{"id": "a1", "specialization": "data-processing"}, {"id": "a2", "specialization": "data-processing"}]}]}\''
)

CASES: list[tuple[str, str, Callable[[Engine], str]]] = [
    ("start_workflow", "creates a workflow and its tasks, then fails", lambda e: NEW_WF),
    ("cancel_workflow", "cancels (archives) a running workflow", lambda e: f"/coordination-hub cancel {_busy(e)}"),
    ("pause_workflow", "pauses running tasks", lambda e: f"/coordination-hub pause {_busy(e)}"),
    ("checkpoint", "takes a checkpoint", lambda e: "/coordination-hub save-state '{}'"),
]


def _busy(eng: Engine) -> str:
    return sorted({t.workflow for t in eng.state.tasks.values() if t.agent})[0]


@pytest.mark.parametrize(("method", "what", "command"), CASES, ids=[c[0] for c in CASES])
async def test_a_command_failing_midway_leaves_the_state_as_before(
    monkeypatch: pytest.MonkeyPatch, method: str, what: str, command: Callable[[Engine], str]
) -> None:
    eng = await _running_fleet()
    text = command(eng)
    before, seq, held = _everything(eng.state), eng.state.seq, list(eng.log.buffer)
    heard = _listen(eng)
    _fail_after(monkeypatch, method)
    resp = await run_command(eng, text)
    assert resp["status"] == "error", (what, resp)
    assert (eng.state.seq, eng.log.buffer, heard) == (seq, held, []), what  # nothing held or told of
    assert _everything(eng.state) == before, what
    monkeypatch.undo()
    ok = await run_command(eng, text)  # the same command, not failing, does change the state
    assert ok["status"] == "success", ok
    assert eng.state.seq > seq and heard


async def test_a_rollback_failing_midway_leaves_the_state_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = await _running_fleet()
    cp = await eng.checkpoint("manual", "probe")
    await eng.advance(200)
    before, seq = _everything(eng.state), eng.state.seq
    _fail_after(monkeypatch, "rollback")
    resp = await run_command(eng, f"/workflow-recovery rollback '{{\"checkpoint\": {cp}}}'")
    assert resp["status"] == "error", resp
    assert eng.state.seq == seq
    assert _everything(eng.state) == before


async def test_failing_mutating_command_leaves_state_as_before_and_records_nothing() -> None:
    eng = _engine(3)
    h, seq, held = eng.state.state_hash(), eng.state.seq, list(eng.log.buffer)
    heard = _listen(eng)
    resp = await run_command(eng, '/resource-manager scale \'{"pool": "p", "size": 99}\'')
    assert resp["status"] == "error"
    assert (eng.state.state_hash(), eng.state.seq, eng.log.buffer, heard) == (h, seq, held, [])


def test_a_rejected_injected_event_changes_nothing() -> None:
    """A fold that fails part-way (its task does not exist) is taken back by its own journal."""
    from core.events import EventHeader

    eng = _engine(3)
    before, seq = _everything(eng.state), eng.state.seq
    with pytest.raises(EngineError):
        eng.inject(EventHeader(type="TASK_COMPLETED", component="agent", scope="w", data={"task": "w/nope"}))
    assert eng.state.seq == seq and _everything(eng.state) == before


# -- counters -------------------------------------------------------------------------------


async def test_taken_back_counter_events_leave_state_and_chain_as_before(tmp_path: Path) -> None:
    """With a store, so that there is a chain: the next commit writes none of them."""
    eng = await open_sim(tmp_path / "u.db")
    try:
        eng.create_pool("p", ["x"], 0, 4)
        await eng.flush()
        assert eng.store is not None
        h, seq, head, rows = eng.state.state_hash(), eng.state.seq, eng.head_hash, await eng.store.count_events()
        assert rows == seq > 0
        unit = eng.begin_unit()
        eng.emit(COMMAND_EXECUTED, "command", "resource-manager", {"command": "/x", "status": "success"})
        eng.emit("AGENT_OBSERVED_NOTE", "agent", "x", {})  # no fold: counted in observed
        assert eng.state.seq == seq + 2
        assert eng.end_unit(unit, keep=False)
        await eng.flush()
        after = (eng.state.state_hash(), eng.state.seq, eng.head_hash, await eng.store.count_events())
        assert after == (h, seq, head, rows)
    finally:
        await eng.close()


# -- cost -------------------------------------------------------------------------------------


def _p50(eng: Engine, n: int, text: Callable[[int], str]) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        resp = asyncio.run(run_command(eng, text(i)))
        times.append(time.perf_counter() - t0)
        assert resp["status"] == "success", resp
    return sorted(times)[n // 2]


def _scale(i: int) -> str:
    return f'/resource-manager scale \'{{"pool": "p", "size": {1 + i % 2}}}\''


@pytest.mark.parametrize("text", [lambda i: READ_ONLY, _scale], ids=["read-only", "mutating"])
def test_command_cost_does_not_follow_live_state(text: Callable[[int], str]) -> None:
    """20,000 live tasks: a copy of them took ~1 s a command; the bound is generous
    (5x the empty engine's p50 plus 20 ms) so that a loaded machine does not fail it."""
    small, big = _engine(0), _engine(20_000)
    _p50(small, 3, text), _p50(big, 3, text)  # warm-up
    p_small, p_big = _p50(small, 21, text), _p50(big, 21, text)
    assert p_big <= 5 * p_small + 0.02, (p_small, p_big)


def test_the_indexes_a_fold_keeps_equal_a_rebuild(recorded: dict[str, list[Event]]) -> None:
    """After each event of a run, the derived indexes the folds keep (WORKFLOW_CREATED
    builds them as it builds the tasks) are those ``reindex`` rebuilds from the records."""
    state = State(EVENTS.folds, collect_archive=True)
    for ev in recorded["fleet"]:
        state.apply(ev)
        if ev.type in ("WORKFLOW_CREATED", "WORKFLOW_STARTED", "TASK_COMPLETED"):
            kept = _derived(state)
            rebuilt = State.from_snapshot(EVENTS.folds, state.snapshot(checkpoint_labels=True))
            assert _derived(rebuilt) == kept, ev.type

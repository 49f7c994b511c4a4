"""The cyclic collector once an engine is open: the loaded projection frozen, thresholds raised."""

from __future__ import annotations

import types
import weakref
from pathlib import Path
from typing import Any

import pytest

from core.clock import VirtualClock
from core.engine import Engine
from core.engine.bridge import Reports
from core.runtimes.sim import SimRuntime


def _sim_engine() -> tuple[Engine, VirtualClock]:
    """An engine on a virtual clock, its sim runtime never beating, with four agents in pool "p"."""
    clock = VirtualClock()
    eng = Engine(clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("p", ["x"], 0, 4)
    for _ in range(4):
        eng.add_agent("p")
    return eng, clock


async def test_an_open_freezes_what_lived_before_it_and_the_engine_is_collected_once_closed(tmp_path: Path) -> None:
    """An open freezes what lived before it (no later pass walks it) and sets the
    engine's thresholds; the engine itself, with a small projection, is not frozen,
    so once closed it is collected as any garbage, without thawing the heap (a frozen
    engine, its parts referring to each other, stayed in memory for good)."""
    import gc

    from core.collector import GC_THRESHOLDS

    before = gc.get_freeze_count()
    eng = await Engine.open(tmp_path / "g.db")
    frozen = gc.get_freeze_count()
    assert frozen > before and gc.get_threshold() == GC_THRESHOLDS
    assert not eng.collector.frozen
    ref = weakref.ref(eng)
    await eng.close()
    del eng
    gc.collect()
    assert ref() is None
    assert gc.get_freeze_count() == frozen  # nothing was thawed


def test_timers_let_go_of_their_callbacks_once_run_or_cancelled() -> None:
    """A simulated task and its finish timer refer to each other through the timer's
    callback; the clock drops a callback once it ran (or was cancelled), so finished tasks
    are freed by reference counting, with the cyclic collector off."""
    import asyncio
    import gc

    from core.runtimes.sim import _SimTask

    def alive() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, _SimTask))

    eng, clock = _sim_engine()
    tasks = [{"id": f"t{i}", "specialization": "x", "duration_s": i % 3, "cpu": 0, "memory_gb": 0} for i in range(200)]
    alloc = {"cpu_cores": 1, "memory_gb": 1, "agents": 3}
    eng.create_workflow({"id": "w", "allocation": alloc, "phases": [{"name": "a", "tasks": tasks}]})
    gc.collect()
    before = alive()
    was = gc.isenabled()
    gc.disable()
    try:
        eng.start_workflow("w")
        asyncio.run(eng.advance(1000.0))
        assert eng.state.status_of("w") is not None and eng.state.status_of("w").value == "completed"
        assert alive() == before  # 200 tasks ran: none is left for the collector
        timer = clock.call_later(5.0, lambda: None)
        timer.cancel()
        assert timer.fn() is None and timer.cancelled  # the callback is let go, the timer stays cancelled
    finally:
        if was:
            gc.enable()


def _big(wid: str, n: int, deps: bool = False) -> dict[str, object]:
    tasks = [
        {"id": f"t{i}", "specialization": "x", "duration_s": 0, "cpu": 0, "memory_gb": 0}
        | ({"depends_on": [f"t{i - 1}"]} if deps and i else {})
        for i in range(n)
    ]
    return {
        "id": wid,
        "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 3},
        "phases": [{"name": "a", "tasks": tasks}],
    }


async def _freed_by_the_next_open(tmp_path: Path, *refs: weakref.ref[object]) -> None:
    """Open another engine (its open runs a collection) and assert each of ``refs`` is dead."""
    other = await Engine.open(tmp_path / "b.db")
    try:
        assert all(ref() is None for ref in refs)
    finally:
        await other.close()


async def test_a_closed_engine_is_freed_with_all_it_froze(tmp_path: Path) -> None:
    """An opened engine froze what it loaded, and a big workflow once created; its parts
    refer to each other, and a frozen cycle is never collected: once closed it is
    thawed, and the next open's collection frees it and every task it held (before
    the thaw, each engine opened in a process stayed in memory with all its tasks)."""
    import gc

    from core.collector import BULK_TASKS

    eng = await Engine.open(tmp_path / "a.db")
    frozen = gc.get_freeze_count()
    eng.create_workflow(_big("w", BULK_TASKS))
    assert gc.get_freeze_count() > frozen + BULK_TASKS  # the workflow's tasks were frozen
    await eng.flush()
    engine_ref, task_ref = weakref.ref(eng), weakref.ref(eng.state.tasks["w/t0"])
    await eng.close()
    del eng
    await _freed_by_the_next_open(tmp_path, engine_ref, task_ref)
    # Opened again: a projection of BULK_TASKS records is frozen once loaded, and thawed
    # with its engine's close as well.
    again = await Engine.open(tmp_path / "a.db")
    assert again.collector.frozen and len(again.state.tasks) == BULK_TASKS
    engine_ref, task_ref = weakref.ref(again), weakref.ref(again.state.tasks["w/t0"])
    await again.close()
    del again
    await _freed_by_the_next_open(tmp_path, engine_ref, task_ref)


def test_a_big_workflow_is_frozen_once_built_and_its_tasks_freed_when_archived() -> None:
    """From BULK_TASKS tasks a created workflow is frozen (no later collection walks
    it); its tasks refer to nothing that refers back, so archiving the finished
    workflow frees them by reference counting, frozen or not, with the collector off.
    A smaller workflow, and a refused one, freeze nothing."""
    import asyncio
    import gc

    from core.collector import BULK_TASKS
    from core.engine import EngineError

    eng, _ = _sim_engine()
    was = gc.isenabled()
    try:
        before = gc.get_freeze_count()
        eng.create_workflow(_big("small", BULK_TASKS - 1))
        # The count can fall (objects another test froze in this process, freed by
        # refcount meanwhile) but only a freeze makes it rise.
        assert not eng.collector.frozen and gc.get_freeze_count() <= before
        bad = _big("bad", BULK_TASKS)
        bad["phases"][0]["tasks"][5]["depends_on"] = ["nowhere"]  # type: ignore[index]
        try:
            eng.create_workflow(bad)
            raise AssertionError("accepted a dependency on no task")
        except EngineError as exc:
            assert exc.code == "INVALID_WORKFLOW"
        assert not eng.collector.frozen and gc.get_freeze_count() <= before and not eng.state.knows("bad")
        eng.create_workflow(_big("w", BULK_TASKS))
        assert eng.collector.frozen and gc.get_freeze_count() >= before + BULK_TASKS
        refs = [weakref.ref(eng.state.tasks[f"w/t{i}"]) for i in (0, BULK_TASKS // 2, BULK_TASKS - 1)]
        gc.disable()
        eng.start_workflow("w")
        asyncio.run(eng.advance(10.0))
        assert "w" in eng.state.finished and "w/t0" not in eng.state.tasks
        assert [r() for r in refs] == [None, None, None]
    finally:
        if was:
            gc.enable()
        eng.collector.thaw()


def test_specs_are_recorded_as_the_whole_spec_would_be_encoded() -> None:
    """Specs validated and encoded a chunk of tasks at a time give the data the whole
    spec's ``model_dump`` gives, to the byte (the stored WORKFLOW_CREATED row), for
    defaults written out, left out or differing, and empty phases; a phase without
    its tasks list is refused as the whole spec refuses it."""
    from pydantic import ValidationError

    from core.engine.workflows import SUBMIT_CHUNK, _drained, _encoded
    from core.events import canonical_json
    from core.models import WorkflowSpec

    many = [
        {"id": f"t{i}", "specialization": "x"}
        | ({"cpu": 1.0, "depends_on": []} if i % 3 == 0 else {})  # defaults written out
        | ({"cpu": 0, "memory_gb": 2, "depends_on": [f"t{i - 1}"], "inputs": {"k": [i]}} if i % 3 == 1 else {})
        | ({"command": "echo hi", "env": {"A": "1"}, "retries": 0, "interactive": True} if i % 3 == 2 else {})
        for i in range(SUBMIT_CHUNK * 2 + 7)
    ]
    specs: list[dict[str, object]] = [
        {"id": "w", "phases": [{"name": "a", "tasks": many}, {"name": "b", "tasks": []}]},
        {"id": "w", "name": "", "priority": 50, "depends_on": [], "phases": []},
        {"id": "w", "priority": 90, "allocation": {"cpu_cores": 2, "memory_gb": 4, "agents": 3}},
        {"id": "w", "guarantee": {"agents": 1}, "phases": [{"name": "a", "tasks": many[:5]}]},
    ]
    for raw in specs:
        whole = WorkflowSpec.model_validate(raw).model_dump(mode="json", exclude_defaults=True)
        head, data = _drained(_encoded(raw))
        assert canonical_json(data) == canonical_json(whole)
        assert head.id == "w"
    for bad in (
        {"id": "w", "phases": [{"name": "a"}]},
        {"id": "w", "phases": [{"name": "a", "tasks": many[:3] + [{"id": "z", "specialization": "x", "cpu": -1}]}]},
    ):
        try:
            _drained(_encoded(bad))
            raise AssertionError(f"accepted {bad}")
        except ValidationError as exc:
            try:
                WorkflowSpec.model_validate(bad)
                raise AssertionError(f"the whole spec accepts {bad}")
            except ValidationError as whole_exc:
                assert exc.errors() == whole_exc.errors()


async def test_an_open_that_fails_once_loaded_leaves_nothing_frozen(tmp_path: Path) -> None:
    """An open that fails after the projection was loaded and frozen (here: the runtime
    refuses to attach) thaws what it froze: the engine it built is collected, not held
    in the permanent generation for the life of the process."""
    import gc

    from core.collector import BULK_TASKS

    eng = await Engine.open(tmp_path / "f.db")
    eng.create_workflow(_big("w", BULK_TASKS))
    await eng.close()
    del eng
    refs: list[weakref.ref[Any]] = []

    class Refusing:
        def attach(self, sink: Reports) -> None:
            beat = sink.agent_heartbeat  # the engine's own method: its liveness facts go there
            assert isinstance(beat, types.MethodType)
            refs.append(weakref.ref(beat.__self__))
            raise RuntimeError("no runtime today")

    try:
        await Engine.open(tmp_path / "f.db", runtime=Refusing())  # type: ignore[arg-type]
        raise AssertionError("opened with a runtime that refused")
    except RuntimeError:
        pass
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None


async def test_cycles_a_bulk_freeze_held_are_freed_by_maintenance_once_what_it_froze_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cycle alive when a big workflow is frozen, and dropped later, is out of the
    collector's reach: maintenance thaws, collects and refreezes once the tasks frozen
    since (here REFREEZE_TASKS = BULK_TASKS) are over twice the records live, so the cycle
    goes once the workflow is archived. The case that must not: while the workflow lives,
    maintenance walks nothing and the cycle stays."""
    import gc

    from core import collector
    from core.collector import BULK_TASKS

    class Cycle:
        me: object = None

    monkeypatch.setattr(collector, "REFREEZE_TASKS", BULK_TASKS)
    monkeypatch.setattr(collector._Freezes, "tasks", 0)
    eng, _ = _sim_engine()
    try:
        cycle = Cycle()
        cycle.me = cycle
        ref = weakref.ref(cycle)
        eng.create_workflow(_big("w", BULK_TASKS))  # frozen, and the cycle with it
        del cycle
        gc.collect()
        await eng.maintain()
        assert ref() is not None and eng.collector.frozen  # the workflow lives: no whole pass
        eng.start_workflow("w")
        await eng.advance(10.0)  # runs maintenance too
        await eng.maintain()
        assert "w" in eng.state.finished and ref() is None
        assert collector._Freezes.tasks == 0 and eng.collector.frozen  # frozen again, counted anew
    finally:
        eng.collector.thaw()

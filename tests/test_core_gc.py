"""The cyclic collector once an engine is open: the loaded projection frozen, thresholds raised."""

from __future__ import annotations

from pathlib import Path

from core.engine import Engine


async def test_an_opened_engine_freezes_what_it_loaded(tmp_path: Path) -> None:
    """After open, the loaded projection is out of the cyclic collector's reach (the frozen
    count grew) and the thresholds are the engine's. What an earlier test froze stays
    frozen: thawing the worker's whole heap made the open's full collection walk it all
    (4.6 s of CPU late in a run, 0.1 s at its start)."""
    import gc

    from core.engine.workflows import GC_THRESHOLDS

    gc.collect()
    before = gc.get_freeze_count()
    eng = await Engine.open(tmp_path / "g.db")
    try:
        assert gc.get_freeze_count() > before
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        await eng.close()


def test_timers_let_go_of_their_callbacks_once_run_or_cancelled() -> None:
    """A simulated task and its finish timer refer to each other through the timer's
    callback; the clock drops a callback once it ran (or was cancelled), so finished tasks
    are freed by reference counting, with the cyclic collector off."""
    import asyncio
    import gc

    from core.clock import VirtualClock
    from core.runtimes.sim import SimRuntime, _SimTask

    def alive() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, _SimTask))

    clock = VirtualClock()
    eng = Engine(clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("p", ["x"], 0, 4)
    for _ in range(4):
        eng.add_agent("p")
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

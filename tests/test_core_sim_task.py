"""SimRuntime.start_task builds its task record by setting its slots: every field is set,
as the dataclass would set it."""

from __future__ import annotations

from dataclasses import fields

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.runtimes.sim import SimRuntime, _SimTask


def test_a_started_simulated_task_holds_every_field_with_its_values() -> None:
    clock = VirtualClock(3.0)
    rt = SimRuntime(clock, seed=1)
    eng = Engine(config=Config(), clock=clock, runtime=rt)
    eng.create_pool("p", ["x"], 0, 4)
    eng.add_agent("p")
    spec = {"id": "w", "phases": [{"name": "p", "tasks": [{"id": "t", "specialization": "x", "duration_s": 5}]}]}
    eng.create_workflow(spec)
    eng.start_workflow("w")
    clock.run_until(3.0)
    (sa,) = rt.agents.values()
    st = sa.task
    assert st is not None
    values = {f.name: getattr(st, f.name) for f in fields(_SimTask)}  # an unset slot raises AttributeError
    timer = values.pop("finish_timer")
    assert timer is not None and timer.when == 8.0 and not timer.cancelled
    assert values == {
        "task_id": "w/t",
        "work_left": 5.0,
        "cpu": 1.0,
        "memory_gb": 0.5,
        "started": 3.0,
        "running": True,
        "last_change": 3.0,
        "total": 5.0,
        "agent": sa,
        "sim": rt,
    }
    clock.run_until(8.0)
    assert sa.task is None and eng.state.status_of("w") is not None and eng.state.status_of("w").value == "completed"

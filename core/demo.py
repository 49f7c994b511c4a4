"""The built-in demo fleet: three pools and the workflows the seed names.

workflow_001..003 run at CRITICAL, HIGH and LOW priority; impl_auth_001 is followed
by debug_perf_002, which depends on it; migration_workflow_001 moves data. Durations
are drawn from a seeded RNG so the same seed gives the same fleet.
"""

from __future__ import annotations

import random
from typing import Any

from .engine import Engine
from .event_types import (
    SYSTEM_STARTUP,
    WORKFLOW_COMPLETED,
)

POOLS: list[dict[str, Any]] = [
    {
        "name": "implementation",
        "specializations": ["implementation", "testing"],
        "size": 5,
        "min_size": 3,
        "max_size": 10,
    },
    {"name": "analysis", "specializations": ["debug", "performance"], "size": 5, "min_size": 3, "max_size": 10},
    {"name": "data", "specializations": ["data", "migration"], "size": 4, "min_size": 2, "max_size": 8},
]

# (id, name, priority, allocation, depends_on, phases: [(phase, [(task, specialization, n_deps_from_prev)])])
WORKFLOWS: list[dict[str, Any]] = [
    {
        "id": "workflow_001",
        "name": "Checkout service release",
        "priority": 95,
        "allocation": {"cpu_cores": 3.0, "memory_gb": 5.0, "agents": 4},
        "phases": [("build", "implementation", 3), ("test", "testing", 4), ("release", "implementation", 2)],
        "scale": 1.0,
    },
    {
        "id": "workflow_002",
        "name": "Search index rebuild",
        "priority": 72,
        "allocation": {"cpu_cores": 2.5, "memory_gb": 5.0, "agents": 4},
        "phases": [("extract", "data", 3), ("index", "performance", 4), ("verify", "debug", 2)],
        "scale": 1.2,
    },
    {
        "id": "workflow_003",
        "name": "Nightly usage reports",
        "priority": 25,
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("collect", "data", 3), ("aggregate", "performance", 3), ("publish", "implementation", 1)],
        "scale": 1.5,
    },
    {
        "id": "impl_auth_001",
        "name": "Implement auth service",
        "priority": 82,
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("design", "implementation", 1), ("implement", "implementation", 3), ("test", "testing", 3)],
        "scale": 1.0,
    },
    {
        "id": "debug_perf_002",
        "name": "Debug auth performance",
        "priority": 60,
        "depends_on": ["impl_auth_001"],
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("profile", "performance", 2), ("fix", "debug", 2), ("benchmark", "performance", 1)],
        "scale": 1.0,
    },
    {
        "id": "migration_workflow_001",
        "name": "User table migration",
        "priority": 50,
        "allocation": {"cpu_cores": 1.5, "memory_gb": 3.0, "agents": 2},
        "phases": [("snapshot", "data", 1), ("migrate", "migration", 3), ("validate", "data", 2)],
        "scale": 1.3,
    },
]


def workflow_specs(seed: int = 0, duration_scale: float = 1.0) -> list[dict[str, Any]]:
    """The demo's workflow definitions, with durations drawn from ``seed``."""
    rng = random.Random(seed)
    specs = []
    for w in WORKFLOWS:
        phases = []
        for phase, spec, n in w["phases"]:
            tasks = []
            for i in range(n):
                tasks.append(
                    {
                        "id": f"{phase}_{i + 1}",
                        "specialization": spec,
                        "duration_s": round(rng.uniform(240, 900) * w["scale"] * duration_scale, 1),
                        "cpu": round(rng.uniform(0.5, 1.0), 2),
                        "memory_gb": round(rng.uniform(0.6, 1.4), 2),
                    }
                )
            phases.append({"name": phase, "tasks": tasks})
        specs.append(
            {
                "id": w["id"],
                "name": w["name"],
                "priority": w["priority"],
                "depends_on": w.get("depends_on", []),
                "allocation": w["allocation"],
                "phases": phases,
            }
        )
    return specs


def build_demo(engine: Engine, seed: int = 0, duration_scale: float = 1.0, start: bool = True) -> None:
    """Create the demo fleet in an empty engine and start every workflow."""
    engine.emit(
        SYSTEM_STARTUP,
        "system",
        "global",
        {"fleet": "demo", "seed": seed, "capacity": engine.config.capacity.model_dump()},
    )
    for p in POOLS:
        engine.create_pool(p["name"], p["specializations"], p["min_size"], p["max_size"])
    for p in POOLS:
        for _ in range(p["size"]):
            engine.add_agent(p["name"])
    for spec in workflow_specs(seed, duration_scale):
        engine.create_workflow(spec)
    if start:
        for spec in workflow_specs(seed, duration_scale):
            engine.start_workflow(spec["id"])


RUN_SEP = "_r"


def _split_run(wf_id: str) -> tuple[str, int]:
    base, sep, n = wf_id.rpartition(RUN_SEP)
    if sep and n.isdigit() and base in {w["id"] for w in WORKFLOWS}:
        return base, int(n)
    return wf_id, 1


class RecurringDemo:
    """Keeps the demo fleet busy: a new run of each demo workflow is submitted a
    cooldown after its previous run completes (``workflow_001_r2``, ...), so the
    console's demo never runs dry. Only on the virtual clock; the choice is stored
    in the state (setting ``demo_recurring``) so a reopened demo keeps recurring."""

    def __init__(self, engine: Engine, cooldown_s: float = 300.0) -> None:
        from .clock import VirtualClock

        assert isinstance(engine.clock, VirtualClock)
        self.engine = engine
        self.clock = engine.clock
        self.cooldown_s = cooldown_s
        self._scheduled: set[str] = set()
        engine.observe(self._on_event)
        for wf in engine.state.all_workflows():
            if wf.status.value == "completed":
                self._schedule_next(wf.id, (wf.finished_at or self.clock.now()) + cooldown_s)

    def _on_event(self, ev: Any) -> None:
        if ev.type == WORKFLOW_COMPLETED:
            self._schedule_next(ev.data["workflow_id"], self.clock.now() + self.cooldown_s)

    def _schedule_next(self, wf_id: str, when: float) -> None:
        base, run = _split_run(wf_id)
        if base not in {w["id"] for w in WORKFLOWS}:
            return
        nxt = f"{base}{RUN_SEP}{run + 1}"
        if self.engine.state.knows(nxt) or nxt in self._scheduled:
            return
        self._scheduled.add(nxt)
        self.clock.call_at(when, lambda: self._submit(base, run + 1))

    def _submit(self, base: str, run: int) -> None:
        eng = self.engine
        new_id = f"{base}{RUN_SEP}{run}"
        self._scheduled.discard(new_id)
        if eng.state.knows(new_id) or eng.readonly:
            return
        seed = int(eng.state.settings.get("sim_seed", 0))
        spec = next(s for s in workflow_specs(seed + run) if s["id"] == base)
        spec["id"] = new_id
        spec["name"] = f"{spec['name']} (run {run})"
        spec["depends_on"] = [f"{d}{RUN_SEP}{run}" for d in spec["depends_on"] if eng.state.knows(f"{d}{RUN_SEP}{run}")]
        from .engine import EngineError

        try:
            eng.create_workflow(spec, actor="demo")
            eng.start_workflow(new_id, actor="demo")
        except EngineError:
            return  # frozen or over a limit the operator set: the demo does not force it

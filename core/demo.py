"""The built-in demo fleet: three pools and the workflows the seed names.

workflow_001..003 run at CRITICAL, HIGH and LOW priority; impl_auth_001 is followed
by debug_perf_002, which depends on it; migration_workflow_001 moves data. Durations
are drawn from a seeded RNG so the same seed gives the same fleet.
"""

from __future__ import annotations

import random
from typing import Any

from .engine import Engine

POOLS: list[dict[str, Any]] = [
    {"name": "implementation", "specializations": ["implementation", "testing"], "size": 5, "min_size": 3, "max_size": 10},
    {"name": "analysis", "specializations": ["debug", "performance"], "size": 5, "min_size": 3, "max_size": 10},
    {"name": "data", "specializations": ["data", "migration"], "size": 4, "min_size": 2, "max_size": 8},
]

# (id, name, priority, allocation, depends_on, phases: [(phase, [(task, specialization, n_deps_from_prev)])])
WORKFLOWS: list[dict[str, Any]] = [
    {
        "id": "workflow_001", "name": "Checkout service release", "priority": 95,
        "allocation": {"cpu_cores": 3.0, "memory_gb": 5.0, "agents": 4},
        "phases": [("build", "implementation", 3), ("test", "testing", 4), ("release", "implementation", 2)],
        "scale": 1.0,
    },
    {
        "id": "workflow_002", "name": "Search index rebuild", "priority": 72,
        "allocation": {"cpu_cores": 2.5, "memory_gb": 5.0, "agents": 4},
        "phases": [("extract", "data", 3), ("index", "performance", 4), ("verify", "debug", 2)],
        "scale": 1.2,
    },
    {
        "id": "workflow_003", "name": "Nightly usage reports", "priority": 25,
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("collect", "data", 3), ("aggregate", "performance", 3), ("publish", "implementation", 1)],
        "scale": 1.5,
    },
    {
        "id": "impl_auth_001", "name": "Implement auth service", "priority": 82,
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("design", "implementation", 1), ("implement", "implementation", 3), ("test", "testing", 3)],
        "scale": 1.0,
    },
    {
        "id": "debug_perf_002", "name": "Debug auth performance", "priority": 60, "depends_on": ["impl_auth_001"],
        "allocation": {"cpu_cores": 2.0, "memory_gb": 3.0, "agents": 3},
        "phases": [("profile", "performance", 2), ("fix", "debug", 2), ("benchmark", "performance", 1)],
        "scale": 1.0,
    },
    {
        "id": "migration_workflow_001", "name": "User table migration", "priority": 50,
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
    engine.emit("SYSTEM_STARTUP", "system", "global", {"fleet": "demo", "seed": seed, "capacity": engine.config.capacity.model_dump()})
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

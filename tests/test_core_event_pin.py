"""A seeded scheduling run's events are pinned byte for byte: the head hash, a digest
of every row hash and the projection's state hash, as the code before the emit and
store optimisations wrote them. A change that alters events on purpose updates the
pins (and says why in its commit); a speed-up must leave them as they are."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from pathlib import Path
from typing import Any

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.runtimes.sim import SimRuntime
from core.store_metrics import samples_of

HEAD = "932a9ce4af845d7b8f560f6ab324c7249f292fd78da357a854044fe86953424c"
ROWS = "8ea78cb092359fe9a08c0446f08fa22135612b3795dc3d928485c89b7ea09e3b"
STATE = "e5c3c114bdc8a7d38fc0f2da7d827f5fb933643823065b64912ab1d0837a2fef"


def _dag(layers: int, width: int) -> list[dict[str, Any]]:
    """Layers of zero-duration tasks, each depending on two of the layer before (as bench/scheduling.py)."""
    rng = random.Random(0)
    tasks = []
    for layer in range(layers):
        for i in range(width):
            deps = [] if layer == 0 else [f"t{layer - 1}_{j}" for j in rng.sample(range(width), 2)]
            tasks.append(
                {"id": f"t{layer}_{i}", "specialization": "x", "duration_s": 0, "cpu": 0, "memory_gb": 0}
                | {"depends_on": deps}
            )
    return tasks


async def test_a_seeded_scheduling_run_writes_the_pinned_events(tmp_path: Path) -> None:
    db = tmp_path / "pin.db"
    agents = 7
    cfg = Config()
    cfg.capacity.agents = cfg.workflow_limits.agents = agents
    cfg.capacity.cpu_cores = cfg.workflow_limits.cpu_cores = 1e9
    cfg.capacity.memory_gb = cfg.workflow_limits.memory_gb = 1e9
    clock = VirtualClock()
    eng = await Engine.open(db, config=cfg, clock=clock)
    try:
        eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
        eng.create_pool("bench", ["x"], 0, agents)
        for _ in range(agents):
            eng.add_agent("bench")
        await eng.flush()
        eng.create_workflow(
            {
                "id": "dag",
                "priority": 50,
                "allocation": {"cpu_cores": 1e6, "memory_gb": 1e6, "agents": agents},
                "phases": [{"name": "all", "tasks": _dag(10, 50)}],
            }
        )
        await eng.flush()
        eng.start_workflow("dag")
        await eng.advance(1.0)
        assert eng.state.status_of("dag").value == "completed"
    finally:
        await eng.close()
    con = sqlite3.connect(db)
    try:
        hashes = [r[0] for r in con.execute("SELECT hash FROM events ORDER BY seq")]
        metric_rows = con.execute("SELECT ts, value, earlier FROM metrics").fetchall()
    finally:
        con.close()
    assert len(hashes) == 1515 and hashes[-1] == HEAD
    assert hashlib.sha256("".join(hashes).encode()).hexdigest() == ROWS
    samples = [p for r in metric_rows for p in samples_of(*r)]
    assert len(samples) == 500, "one response_time sample per task"
    assert len(metric_rows) == 1, "the batch's samples of the series in one row"
    again = await Engine.open(db)
    try:
        assert again.state.state_hash() == STATE
    finally:
        await again.close()

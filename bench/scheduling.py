"""Benchmark: scheduling a 10,000-task layered DAG against dask's synchronous scheduler.

The graph: 100 layers of 100 zero-duration tasks, each depending on two tasks of
the layer before. opsdeck runs it on 20 simulated agents through the whole engine
(dispatch, events, projection; in memory). dask runs the same graph with
``dask.local.get_sync`` in the same process. Target: opsdeck at most 0.5x dask's time.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.runtimes.sim import SimRuntime


def layered(layers: int, width: int, seed: int = 0) -> list[list[tuple[str, list[str]]]]:
    rng = random.Random(seed)
    out = []
    for layer in range(layers):
        row = []
        for i in range(width):
            deps = [] if layer == 0 else [f"t{layer - 1}_{j}" for j in rng.sample(range(width), 2)]
            row.append((f"t{layer}_{i}", deps))
        out.append(row)
    return out


def run_opsdeck(graph: list[list[tuple[str, list[str]]]], agents: int) -> tuple[float, int]:
    cfg = Config()
    cfg.capacity.agents = agents
    cfg.capacity.cpu_cores = 1e9
    cfg.capacity.memory_gb = 1e9
    cfg.workflow_limits.agents = agents
    cfg.workflow_limits.cpu_cores = 1e9
    cfg.workflow_limits.memory_gb = 1e9
    clock = VirtualClock()
    eng = Engine(config=cfg, clock=clock, runtime=SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("bench", ["x"], 0, agents)
    for _ in range(agents):
        eng.add_agent("bench")
    tasks: list[dict[str, Any]] = []
    for row in graph:
        for name, deps in row:
            tasks.append({"id": name, "specialization": "x", "duration_s": 0, "cpu": 0, "memory_gb": 0, "depends_on": deps})
    eng.create_workflow({"id": "dag", "priority": 50, "allocation": {"cpu_cores": 1e6, "memory_gb": 1e6, "agents": agents},
                         "phases": [{"name": "all", "tasks": tasks}]})
    t0 = time.perf_counter()
    eng.start_workflow("dag")
    clock.run_until(0.0)
    took = time.perf_counter() - t0
    assert eng.state.workflows["dag"].status.value == "completed", eng.state.workflows["dag"].status
    return took, eng.state.seq


def run_dask(graph: list[list[tuple[str, list[str]]]]) -> float:
    from dask.local import get_sync

    def noop(*_: Any) -> None:
        return None

    dsk: dict[str, Any] = {}
    for row in graph:
        for name, deps in row:
            dsk[name] = (noop, *deps)
    keys = [name for name, _ in graph[-1]]
    t0 = time.perf_counter()
    get_sync(dsk, keys)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best time of each is compared")
    args = ap.parse_args()
    graph = layered(args.layers, args.width)
    d = min(run_dask(graph) for _ in range(args.repeat))
    runs = [run_opsdeck(graph, args.agents) for _ in range(args.repeat)]
    o, events = min(r[0] for r in runs), runs[0][1]
    n = args.layers * args.width
    print(f"{'scheduler':<38}{'tasks':>7}{'seconds':>10}{'tasks/s':>10}")
    print(f"{'dask.local.get_sync':<38}{n:>7}{d:>10.3f}{n / d:>10,.0f}")
    print(f"{'opsdeck engine, ' + str(args.agents) + ' sim agents':<38}{n:>7}{o:>10.3f}{n / o:>10,.0f}")
    print(f"ratio opsdeck/dask time: {o / d:.2f}x (target <= 0.5x); {events} events folded")


if __name__ == "__main__":
    main()

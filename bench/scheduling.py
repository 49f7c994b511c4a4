"""Benchmark: scheduling layered DAGs against dask's synchronous scheduler, in one run.

The graph: layers of 100 zero-duration tasks, each depending on two tasks of the
layer before, at 1k / 10k / 100k tasks. opsdeck creates the workflow (validation,
the WORKFLOW_CREATED event) and runs it on 20 simulated agents through the whole
engine with its SQLite store (dispatch, events, projection, group commits). dask
runs the same graph with ``dask.local.get_sync``; its execution loop alone (after
graph conversion and ``dask.order``) is timed with dask's own callbacks.
``graphlib.TopologicalSorter`` walking the graph is the lower bound. dask and opsdeck
alternate in one run (dask first, then opsdeck first, ...); each is timed in wall
seconds and in CPU seconds of the process (opsdeck's store writer thread included).
Printed: the ratios end to end (opsdeck create+run vs get_sync) and loop only
(opsdeck run vs dask's loop), best of the repeats, with the load average. Target
(issue #22): the loop <= 3x dask's at 10k tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
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


async def run_opsdeck(
    graph: list[list[tuple[str, list[str]]]], agents: int, db: Path
) -> tuple[float, float, float, float, int]:
    """(create seconds, run seconds, create CPU seconds, run CPU seconds, events): the
    whole engine with its SQLite store."""
    cfg = Config()
    cfg.capacity.agents = agents
    cfg.capacity.cpu_cores = 1e9
    cfg.capacity.memory_gb = 1e9
    cfg.workflow_limits.agents = agents
    cfg.workflow_limits.cpu_cores = 1e9
    cfg.workflow_limits.memory_gb = 1e9
    clock = VirtualClock()
    eng = await Engine.open(db, config=cfg, clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    eng.create_pool("bench", ["x"], 0, agents)
    for _ in range(agents):
        eng.add_agent("bench")
    await eng.flush()
    tasks: list[dict[str, Any]] = []
    for row in graph:
        for name, deps in row:
            tasks.append(
                {"id": name, "specialization": "x", "duration_s": 0, "cpu": 0, "memory_gb": 0, "depends_on": deps}
            )
    wf = {
        "id": "dag",
        "priority": 50,
        "allocation": {"cpu_cores": 1e6, "memory_gb": 1e6, "agents": agents},
        "phases": [{"name": "all", "tasks": tasks}],
    }
    t0, c0 = time.perf_counter(), time.process_time()
    eng.create_workflow(wf)
    await eng.flush()
    t1, c1 = time.perf_counter(), time.process_time()
    eng.start_workflow("dag")
    await eng.advance(1.0)  # zero-duration tasks: all of it at one instant, committed in batches
    t2, c2 = time.perf_counter(), time.process_time()
    assert eng.state.status_of("dag").value == "completed", eng.state.status_of("dag")
    events = eng.state.seq
    await eng.close()
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1, events


def run_dask(graph: list[list[tuple[str, list[str]]]]) -> tuple[float, float, float]:
    """(total seconds of get_sync, seconds of its execution loop alone: after the graph
    conversion, ``dask.order`` and the start state, until the last task finished, and
    the loop's CPU seconds)."""
    from dask.callbacks import Callback
    from dask.local import get_sync

    def noop(*_: Any) -> None:
        return None

    dsk: dict[str, Any] = {}
    for row in graph:
        for name, deps in row:
            dsk[name] = (noop, *deps)
    keys = [name for name, _ in graph[-1]]
    marks: dict[str, float] = {}

    def start(*_: Any) -> None:
        marks["loop"], marks["loop_cpu"] = time.perf_counter(), time.process_time()

    def finish(*_: Any) -> None:
        marks["end"], marks["end_cpu"] = time.perf_counter(), time.process_time()

    cb = Callback(start_state=start, finish=finish)
    t0 = time.perf_counter()
    with cb:
        get_sync(dsk, keys)
    total = time.perf_counter() - t0
    return total, marks["end"] - marks["loop"], marks["end_cpu"] - marks["loop_cpu"]


def run_graphlib(graph: list[list[tuple[str, list[str]]]]) -> float:
    """The lower bound: graphlib.TopologicalSorter walking the same graph."""
    from graphlib import TopologicalSorter

    t0 = time.perf_counter()
    ts: TopologicalSorter[str] = TopologicalSorter()
    for row in graph:
        for name, deps in row:
            ts.add(name, *deps)
    ts.prepare()
    while ts.is_active():
        for node in ts.get_ready():
            ts.done(node)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000,100000", help="task counts (layers of --width tasks)")
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of each, alternated; the best of each is compared")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'tasks':>7} {'dask total':>11} {'dask loop':>10} {'loop CPU':>9} {'graphlib':>9} {'ops create':>11} "
        f"{'ops run':>8} {'run CPU':>8} {'total x':>8} {'loop x':>7} {'CPU x':>6} {'events':>7}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        graph = layered(max(n // args.width, 1), args.width)
        reps = args.repeat if n <= 10_000 else 1
        dask: list[tuple[float, float, float]] = []
        runs: list[tuple[float, float, float, float, int]] = []

        for i in range(reps):
            for which in ("dask", "opsdeck") if i % 2 == 0 else ("opsdeck", "dask"):
                if which == "dask":
                    dask.append(run_dask(graph))
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    runs.append(asyncio.run(run_opsdeck(graph, args.agents, Path(tmp) / "sched.db")))
        g = min(run_graphlib(graph) for _ in range(reps))
        d_total, d_loop, d_cpu = (min(x[i] for x in dask) for i in range(3))
        create, run_s, run_cpu = min(r[0] for r in runs), min(r[1] for r in runs), min(r[3] for r in runs)
        total = min(r[0] + r[1] for r in runs)
        print(
            f"{n:>7} {d_total:>11.3f} {d_loop:>10.3f} {d_cpu:>9.3f} {g:>9.3f} {create:>11.3f} {run_s:>8.3f} "
            f"{run_cpu:>8.3f} {total / d_total:>7.2f}x {run_s / d_loop:>6.2f}x {run_cpu / d_cpu:>5.2f}x {runs[0][4]:>7}"
        )
    print(
        "seconds, best of the alternated repeats (1 run at 100k); total x = opsdeck create+run (store on) / dask"
        " get_sync; loop x = opsdeck run / dask's execution loop alone (wall); CPU x = the same in CPU seconds"
        f" (target loop <= 3x); load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

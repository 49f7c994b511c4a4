"""Benchmark: dispatch with 1,000 concurrent workflows, the queue against the full scan.

One memory engine (simulated runtime, virtual clock) runs 1,000 workflows started at
once, of four priority bands, each a short chain of tasks, on 20 agents: most of the
run, every agent is busy and hundreds of workflows wait with ready tasks. The same
run is made twice per round, interleaved (queue, scan, queue, scan, ...): once with
``core.scheduler.dispatch`` (workflows kept in band order, dispatch stops when the
agents or the capacity are used) and once with ``bench/dispatch_reference.py``'s
``scan_dispatch`` (the scheduler before the queue: sorts every active workflow and
visits each one on every dispatch). Automatic checkpoints are off in both (one per
finished phase would dominate both runs alike). Both must end in the same state (same hash, same
number of events): the decisions are the same, only their cost differs. Prints CPU
seconds of the whole run and of dispatch alone (median of the rounds) and the ratios.

    python bench/dispatch_bench.py [--workflows 1000] [--agents 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import core.engine.bridge as bridge  # noqa: E402
from bench.dispatch_reference import scan_dispatch  # noqa: E402
from core.clock import VirtualClock  # noqa: E402
from core.config import Config  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.runtimes.sim import SimRuntime  # noqa: E402
from core.scheduler import dispatch  # noqa: E402


def build(workflows: int, agents: int, seed: int) -> Engine:
    clock = VirtualClock()
    cfg = Config()
    cfg.capacity.concurrent_workflows = workflows  # all of them admitted at once
    cfg.capacity.agents = agents
    cfg.capacity.cpu_cores = agents * 0.5
    cfg.capacity.memory_gb = agents * 0.5
    eng = Engine(config=cfg, clock=clock, runtime=SimRuntime(clock, seed=seed))
    eng.auto_checkpoints = False  # each phase's checkpoint would dominate both runs alike
    eng.create_pool("p", ["x"], 0, agents)
    for _ in range(agents):
        eng.add_agent("p")
    rng = random.Random(seed)
    for i in range(workflows):
        n = rng.randint(2, 5)
        tasks = [
            {"id": f"t{j}", "specialization": "x", "duration_s": rng.choice([20, 40, 60]), "cpu": 0.5, "memory_gb": 0.5}
            for j in range(n)
        ]
        for j in range(1, n):
            tasks[j]["depends_on"] = [f"t{j - 1}"]
        wid = f"w{i:05d}"
        eng.create_workflow(
            {
                "id": wid,
                "priority": rng.choice([10, 45, 75, 95]),
                "allocation": {"cpu_cores": 2, "memory_gb": 2, "agents": 2},
                "phases": [{"name": "a", "tasks": tasks}],
            }
        )
        eng.start_workflow(wid)
    return eng


def run(workflows: int, agents: int, fn: Callable[..., list[tuple[str, str]]]) -> tuple[float, float, str, int]:
    """(run CPU s, dispatch CPU s, final state hash, events) of one whole run with ``fn`` as dispatch."""
    eng = build(workflows, agents, seed=7)
    spent = [0.0]

    def timed(*a: Any) -> list[tuple[str, str]]:
        t0 = time.process_time()
        out = fn(*a)
        spent[0] += time.process_time() - t0
        return out

    bridge.dispatch = timed  # type: ignore[assignment]
    try:
        t0 = time.process_time()
        while eng.state.active or eng.state.queued:
            asyncio.run(eng.advance(3600))
        cpu = time.process_time() - t0
    finally:
        bridge.dispatch = dispatch
    return cpu, spent[0], eng.state.state_hash(), eng.state.seq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    res: dict[str, list[tuple[float, float]]] = {"queue": [], "scan": []}
    ends: dict[str, tuple[str, int]] = {}
    for r in range(args.rounds):
        for name, fn in (("queue", dispatch), ("scan", scan_dispatch)):
            cpu, disp, h, n = run(args.workflows, args.agents, fn)
            res[name].append((cpu, disp))
            ends[name] = (h, n)
            print(f"round {r + 1} {name:5}: run {cpu:6.2f} CPU s, dispatch {disp:6.2f} CPU s, {n:,} events", flush=True)
    assert ends["queue"] == ends["scan"], f"the two dispatches decided differently: {ends}"
    q_run = statistics.median(c for c, _ in res["queue"])
    s_run = statistics.median(c for c, _ in res["scan"])
    q_d = statistics.median(d for _, d in res["queue"])
    s_d = statistics.median(d for _, d in res["scan"])
    print(f"\n{args.workflows:,} concurrent workflows on {args.agents} agents; same final state hash and event count")
    print(f"  whole run : queue {q_run:6.2f} CPU s, scan {s_run:6.2f} CPU s, queue/scan {q_run / s_run:.2f}x")
    print(f"  dispatch  : queue {q_d:6.2f} CPU s, scan {s_d:6.2f} CPU s, queue/scan {q_d / s_d:.2f}x")


if __name__ == "__main__":
    main()

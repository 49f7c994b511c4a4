"""Benchmark: one command's latency in process against the size of the live state.

Three memory engines hold one pending workflow of 0 / 10,000 / 100,000 live tasks,
created through the engine (``WORKFLOW_CREATED`` events, folded like any other; the
0 case has no workflow). In one interleaved run (engine after engine, round after
round, so all see the same machine load) each answers a read-only command
(``/resource-manager status``) and a mutating one (``/resource-manager scale`` of a
pool, alternating sizes) through ``run_command``, the one command path. Prints p50
of each, and the ratio to the 0-task engine.

A read-only command's only event is its own COMMAND_EXECUTED record, taken back (if
it must be) from a few counters: no copy of the state. A mutating command still takes
a full undo point (a copy of the state) before its first change: its figure grows
with the live state.

    python bench/command_latency.py [--sizes 0,10000,100000] [--rounds 30] [--mutating-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.commands import run_command  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.session import memory_sim  # noqa: E402

READ_ONLY = "/resource-manager status"
POOL = "bench"


def build(tasks: int) -> Engine:
    """A memory engine with one pool and, unless ``tasks`` is 0, one pending workflow of that many tasks."""
    eng = memory_sim(demo=False)
    eng.create_pool(POOL, ["x"], 0, 4)
    if tasks:
        spec: list[dict[str, Any]] = [
            {"id": f"t{i}", "specialization": "x", "duration_s": 60, "cpu": 0, "memory_gb": 0} for i in range(tasks)
        ]
        eng.create_workflow(
            {
                "id": "big",
                "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 2},
                "phases": [{"name": "all", "tasks": spec}],
            }
        )
    return eng


async def timed(eng: Engine, text: str) -> float:
    t0 = time.perf_counter()
    resp = await run_command(eng, text, actor="bench")
    dt = time.perf_counter() - t0
    assert resp["status"] == "success", (text, resp)
    return dt


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,10000,100000")
    ap.add_argument("--rounds", type=int, default=30, help="read-only commands per engine")
    ap.add_argument("--mutating-rounds", type=int, default=5, help="mutating commands per engine")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = {}
    for n in sizes:
        t0 = time.perf_counter()
        engines[n] = build(n)
        print(f"built {n:,} live tasks through events in {time.perf_counter() - t0:.2f} s", flush=True)
    ro: dict[int, list[float]] = {n: [] for n in sizes}
    mu: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:  # warm-up, not timed
        await timed(engines[n], READ_ONLY)
    for r in range(max(args.rounds, args.mutating_rounds)):
        for n in sizes:
            if r < args.rounds:
                ro[n].append(await timed(engines[n], READ_ONLY))
            if r < args.mutating_rounds:
                size = 1 + r % 2
                mu[n].append(
                    await timed(engines[n], f'/resource-manager scale \'{{"pool": "{POOL}", "size": {size}}}\'')
                )
    base_ro = statistics.median(ro[sizes[0]])
    base_mu = statistics.median(mu[sizes[0]])
    print(f"\n{'live tasks':>10} | {'read-only p50':>14} | {'ratio':>7} | {'mutating p50':>13} | {'ratio':>8}")
    for n in sizes:
        p_ro, p_mu = statistics.median(ro[n]), statistics.median(mu[n])
        print(
            f"{n:>10,} | {p_ro * 1e3:>11.3f} ms | {p_ro / base_ro:>6.2f}x | {p_mu * 1e3:>10.2f} ms | {p_mu / base_mu:>7.1f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())

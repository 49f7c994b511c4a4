"""Benchmark: does cost follow live work or history?

For 0 / 300 / 600 / 3,000 finished workflows (10 zero-duration tasks each) in a
database, it measures, through the whole engine with its SQLite store:

- run: create and run one 1,000-task workflow on 20 simulated agents (dispatch,
  events, projection, store), after that history;
- open: ``Engine.open`` of the database in a fresh process (checkpoint + replay,
  what a console or ``exec`` waits for), and that process's resident memory.

Ratios are against the 0-history run of the same process. Target: run <= 1.1x and
open / memory close to 1x at 600 finished workflows.

usage: python bench/history.py [--sizes 0,300,600,3000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.runtimes.sim import SimRuntime

AGENTS = 20


def config() -> Config:
    cfg = Config()
    cfg.capacity.agents = AGENTS
    cfg.capacity.cpu_cores = 1e9
    cfg.capacity.memory_gb = 1e9
    cfg.capacity.concurrent_workflows = 1000
    cfg.workflow_limits.agents = AGENTS
    cfg.workflow_limits.cpu_cores = 1e9
    cfg.workflow_limits.memory_gb = 1e9
    return cfg


def spec(wf_id: str, n: int) -> dict[str, Any]:
    tasks = [
        {
            "id": f"t{i}",
            "specialization": "x",
            "duration_s": 0,
            "cpu": 0,
            "memory_gb": 0,
            "depends_on": [f"t{i // 2}"] if i else [],
        }
        for i in range(n)
    ]
    return {
        "id": wf_id,
        "priority": 50,
        "allocation": {"cpu_cores": 1e6, "memory_gb": 1e6, "agents": AGENTS},
        "phases": [{"name": "all", "tasks": tasks}],
    }


async def engine_on(db: Path) -> tuple[Engine, VirtualClock]:
    clock = VirtualClock()
    eng = await Engine.open(db, config=config(), clock=clock)
    eng.attach_runtime(SimRuntime(clock, heartbeat_s=1e9, sample_s=1e9))
    return eng, clock


async def build(db: Path, finished: int) -> None:
    eng, clock = await engine_on(db)
    eng.create_pool("bench", ["x"], 0, AGENTS)
    for _ in range(AGENTS):
        eng.add_agent("bench")
    for i in range(finished):
        eng.create_workflow(spec(f"old{i:05d}", 10))
        eng.start_workflow(f"old{i:05d}")
        clock.run_until(clock.now())
        if i % 50 == 49:
            await eng.flush()
            await eng.maintain()
    await eng.flush()
    await eng.checkpoint("manual", "bench: history built")
    await eng.close()


async def run_one(db: Path, tag: str) -> tuple[float, float]:
    """(wall, CPU) seconds of creating and running one 1,000-task workflow."""
    eng, clock = await engine_on(db)
    t0, c0 = time.perf_counter(), time.process_time()
    eng.create_workflow(spec(tag, 1000))
    eng.start_workflow(tag)
    clock.run_until(clock.now())
    await eng.flush()
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert eng.state.seq > 0
    await eng.close()
    return took, cpu


OPEN_CHILD = """
import asyncio, json, resource, sys, time, psutil
sys.path.insert(0, sys.argv[2])
from core.engine import Engine
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
async def main():
    t0, c0 = time.perf_counter(), cpu()
    eng = await Engine.open(sys.argv[1])
    took, cpu_s = time.perf_counter() - t0, cpu() - c0
    st = eng.store  # quick_check skipped: a clean close's record matched (core/store_clean.py)
    skipped = float(st.clean is not None and st.checked_at == st.clean.checked_at)
    rss = psutil.Process().memory_info().rss / 2**20
    print(json.dumps({"open_s": took, "cpu_s": cpu_s, "rss_mb": rss, "skipped": skipped}))
    await eng.close()
asyncio.run(main())
"""


def open_in_child(db: Path) -> dict[str, float]:
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", OPEN_CHILD, str(db), root], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def main(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="opsdeck-history-"))
    rows = []
    for n in sizes:
        db = tmp / f"h{n}.db"
        t0 = time.perf_counter()
        await build(db, n)
        built = time.perf_counter() - t0
        runs = [await run_one(db, f"big{r}") for r in range(args.repeat)]
        opens = [open_in_child(db) for _ in range(args.repeat)]
        rows.append(
            (
                n,
                built,
                min(r[0] for r in runs),
                min(r[1] for r in runs),
                statistics.median(o["open_s"] for o in opens),
                statistics.median(o["cpu_s"] for o in opens),
                statistics.median(o["rss_mb"] for o in opens),
            )
        )
    b = rows[0]
    print(
        f"{'finished workflows':>18} {'build s':>8} {'run wall s':>10} {'x':>6} {'run CPU s':>10} {'x':>6} "
        f"{'open wall s':>11} {'x':>6} {'open CPU s':>10} {'x':>6} {'open RSS MB':>12} {'x':>6}"
    )
    for n, built, run, run_cpu, op, op_cpu, rss in rows:
        print(
            f"{n:>18} {built:>8.2f} {run:>10.3f} {run / b[2]:>6.2f} {run_cpu:>10.3f} {run_cpu / b[3]:>6.2f} "
            f"{op:>11.3f} {op / b[4]:>6.2f} {op_cpu:>10.3f} {op_cpu / b[5]:>6.2f} {rss:>12.1f} {rss / b[6]:>6.2f}"
        )
    print("(run: best of repeats; open: median of repeats, each in a fresh process)")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="0,300,600,3000")
    p.add_argument("--repeat", type=int, default=3)
    sys.exit(asyncio.run(main(p.parse_args())))

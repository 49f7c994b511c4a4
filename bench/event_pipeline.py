"""Benchmark: the engine's event pipeline on the real event mix against plain sqlite3.

opsdeck: workflows of 1,000 tasks run on 20 simulated agents through the whole
engine until ``-n`` events: the mix of a real run (TASK_ASSIGNED / STARTED /
COMPLETED, PHASE_*, WORKFLOW_*, checkpoints), each event numbered, canonically
encoded, SHA-256 chained, folded by its reducer, group-committed to SQLite through
aiosqlite, and published to two subscribers (an event-line formatter, as the
headless printer and the console's log do, and a counter).

Baseline: the identical rows (the same types, payloads and actors, already in
memory as dicts) written with plain sqlite3 ``executemany`` in 1,000-row
transactions into the same schema (indexes and triggers: created by the store) with
the store's durability (WAL, ``synchronous=FULL``), computing the same canonical
encoding and chain.

The two alternate in one run (engine, baseline, then baseline, engine, ...); each is
timed in wall seconds and in CPU seconds of the process (every thread: aiosqlite's
writer included). Printed: the best of each and the ratios, with the load average.
Target (issue #22): >= 0.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import engine_on, spec

from core.events import GENESIS_HASH, Event, canonical_json, chain_next
from core.store import EVENT_COLUMNS, Store


async def run_engine(path: Path, n: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, events) of the engine running workflows until ``n`` events."""
    eng, clock = await engine_on(path)
    lines: list[int] = [0, 0]

    def printer(ev: Event) -> None:
        lines[0] += len(ev.line())

    def counter(ev: Event) -> None:
        lines[1] += 1

    eng.subscribe(printer)
    eng.subscribe(counter)
    t0, c0 = time.perf_counter(), time.process_time()
    eng.create_pool("bench", ["x"], 0, 20)
    for _ in range(20):
        eng.add_agent("bench")
    i = 0
    while eng.state.seq < n:
        wid = f"wf{i:05d}"
        eng.create_workflow(spec(wid, 1000))
        eng.start_workflow(wid)
        while eng.state.workflows.get(wid) is not None:
            clock.run_until(clock.now() + 1, budget=1000)
            await eng.flush()
        await eng.maintain()
        i += 1
    await eng.close()
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert lines[1] == eng.state.seq, "every committed event reached the subscribers"
    return took, cpu, eng.state.seq


def load_rows(path: Path) -> list[tuple[str, str, str, str, float, dict[str, Any]]]:
    con = sqlite3.connect(path)
    rows = [
        (t, c, s, a, ts, json.loads(d))
        for t, c, s, a, ts, d in con.execute("SELECT type, component, scope, actor, ts, data FROM events ORDER BY seq")
    ]
    con.close()
    return rows


def run_baseline(path: Path, rows: list[tuple[str, str, str, str, float, dict[str, Any]]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of writing ``rows`` with their chain."""

    async def schema() -> None:
        st = await Store.open(path)  # the same tables, indexes and triggers
        await st.close()

    asyncio.run(schema())
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")  # the store's durability: a commit that returned is on disk
    sql = f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
    t0, c0 = time.perf_counter(), time.process_time()
    prev = GENESIS_HASH
    batch = []
    for seq, (type_, comp, scope, actor, ts, data) in enumerate(rows, start=1):
        data_json = canonical_json(data)
        h = chain_next(prev, seq, ts, type_, comp, scope, actor, data_json)
        batch.append((seq, ts, type_, comp, scope, actor, data_json, prev, h))
        prev = h
        if len(batch) == 1000:
            con.execute("BEGIN")
            con.executemany(sql, batch)
            con.execute("COMMIT")
            batch = []
    if batch:
        con.execute("BEGIN")
        con.executemany(sql, batch)
        con.execute("COMMIT")
    con.close()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of each, alternated; the best of each is compared")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    eng_wall: list[float] = []
    eng_cpu: list[float] = []
    base_wall: list[float] = []
    base_cpu: list[float] = []
    rows: list[tuple[str, str, str, str, float, dict[str, Any]]] = []
    n = 0
    with tempfile.TemporaryDirectory() as d:

        def engine(i: int) -> None:
            nonlocal rows, n
            db = Path(d) / f"engine{i}.db"
            wall, cpu, n = asyncio.run(run_engine(db, args.n))
            eng_wall.append(wall)
            eng_cpu.append(cpu)
            if not rows:
                rows = load_rows(db)
            assert len(rows) == n, "every round writes the same events"

        def baseline(i: int) -> None:
            wall, cpu = run_baseline(Path(d) / f"baseline{i}.db", rows)
            base_wall.append(wall)
            base_cpu.append(cpu)

        engine(0)  # the rows the baseline writes
        baseline(0)
        for i in range(1, args.repeat):
            for run in (baseline, engine) if i % 2 else (engine, baseline):
                run(i)
    mix: dict[str, int] = {}
    for r in rows:
        mix[r[0]] = mix.get(r[0], 0) + 1
    print("event mix: " + ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])[:6]))
    print(f"{'pipeline (best of ' + str(args.repeat) + ', alternated)':<46}{'events':>9}{'wall s':>8}{'CPU s':>8}")
    print(f"{'baseline sqlite3 executemany + chain':<46}{n:>9}{min(base_wall):>8.2f}{min(base_cpu):>8.2f}")
    print(f"{'opsdeck engine (reducers, store, subscribers)':<46}{n:>9}{min(eng_wall):>8.2f}{min(eng_cpu):>8.2f}")
    print(
        f"events/s: baseline {n / min(base_wall):,.0f} wall, {n / min(base_cpu):,.0f} CPU; "
        f"opsdeck {n / min(eng_wall):,.0f} wall, {n / min(eng_cpu):,.0f} CPU"
    )
    print(
        f"ratio opsdeck/baseline: {min(base_wall) / min(eng_wall):.2f}x wall, {min(base_cpu) / min(eng_cpu):.2f}x CPU "
        f"(target >= 0.5x); load average {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

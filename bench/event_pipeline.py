"""Benchmark: the engine's event pipeline on the real event mix against plain sqlite3.

opsdeck: workflows of 1,000 tasks run on 20 simulated agents through the whole
engine until ``-n`` events: the mix of a real run (TASK_ASSIGNED / STARTED /
COMPLETED, PHASE_*, WORKFLOW_*, checkpoints), each event numbered, canonically
encoded, SHA-256 chained, folded by its reducer, group-committed to SQLite through
aiosqlite, and published to two subscribers (an event-line formatter, as the
headless printer and the console's log do, and a counter).

Baseline: the identical rows (the same types, payloads and actors, already in
memory as dicts) written with plain sqlite3 ``executemany`` in 1,000-row
transactions into the same schema (indexes and triggers: created by the store),
computing the same canonical encoding and chain. Target: >= 0.7x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import engine_on, spec

from core.events import GENESIS_HASH, Event, canonical_envelope, canonical_json, chain_hash
from core.store import EVENT_COLUMNS, Store


async def run_engine(path: Path, n: int) -> tuple[float, int]:
    eng, clock = await engine_on(path)
    lines: list[int] = [0, 0]

    def printer(ev: Event) -> None:
        lines[0] += len(ev.line())

    def counter(ev: Event) -> None:
        lines[1] += 1

    eng.subscribe(printer)
    eng.subscribe(counter)
    t0 = time.perf_counter()
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
    took = time.perf_counter() - t0
    assert lines[1] == eng.state.seq, "every committed event reached the subscribers"
    return took, eng.state.seq


def load_rows(path: Path) -> list[tuple[str, str, str, str, float, dict[str, Any]]]:
    con = sqlite3.connect(path)
    rows = [
        (t, c, s, a, ts, json.loads(d))
        for t, c, s, a, ts, d in con.execute("SELECT type, component, scope, actor, ts, data FROM events ORDER BY seq")
    ]
    con.close()
    return rows


def run_baseline(path: Path, rows: list[tuple[str, str, str, str, float, dict[str, Any]]]) -> float:
    async def schema() -> None:
        st = await Store.open(path)  # the same tables, indexes and triggers
        await st.close()

    asyncio.run(schema())
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    sql = f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
    t0 = time.perf_counter()
    prev = GENESIS_HASH
    batch = []
    for seq, (type_, comp, scope, actor, ts, data) in enumerate(rows, start=1):
        data_json = canonical_json(data)
        h = chain_hash(prev, canonical_envelope(seq, ts, type_, comp, scope, actor, data_json))
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
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best time of each is compared")
    args = ap.parse_args()
    base = eng = float("inf")
    mix: dict[str, int] = {}
    n = 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            took, n = asyncio.run(run_engine(Path(d) / "engine.db", args.n))
            eng = min(eng, took)
            rows = load_rows(Path(d) / "engine.db")
            base = min(base, run_baseline(Path(d) / "baseline.db", rows))
            mix = {}
            for r in rows:
                mix[r[0]] = mix.get(r[0], 0) + 1
    r_base, r_eng = n / base, n / eng
    print("event mix: " + ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])[:6]))
    print(f"{'pipeline':<46}{'events':>9}{'seconds':>10}{'events/s':>12}")
    print(f"{'baseline sqlite3 executemany + chain':<46}{n:>9}{base:>10.2f}{r_base:>12,.0f}")
    print(f"{'opsdeck engine (reducers, store, subscribers)':<46}{n:>9}{eng:>10.2f}{r_eng:>12,.0f}")
    print(f"ratio opsdeck/baseline: {r_eng / r_base:.2f}x (target >= 0.7x)")


if __name__ == "__main__":
    main()

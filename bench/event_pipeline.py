"""Benchmark: the engine's event pipeline against plain sqlite3 in the same run.

opsdeck: 200,000 events through Engine.emit (header validated, canonical encoding,
SHA-256 chain, folded into the projection) and group-committed to SQLite through
aiosqlite. Baseline: the identical rows written with plain sqlite3 executemany in
1,000-row transactions, computing the same SHA-256 chain. Target: >= 0.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from core.clock import VirtualClock
from core.engine import Engine
from core.events import GENESIS_HASH, canonical_encoding, chain_hash, dumps_compact
from core.store import EVENT_COLUMNS, Store

TYPES = ["TASK_PROGRESS_OBSERVED", "RESOURCE_SAMPLE", "AGENT_PERFORMANCE_ALERT", "SYSTEM_THRESHOLD"]


def payload(i: int) -> dict[str, object]:
    return {"workflow_id": f"workflow_{i % 7:03d}", "agent": f"agent_{i % 20:03d}", "value": i * 0.5, "note": "sample"}


async def run_engine(path: Path, n: int) -> float:
    clock = VirtualClock()
    store = await Store.open(path)
    eng = Engine(clock=clock, store=store)
    t0 = time.perf_counter()
    for i in range(n):
        eng.emit(TYPES[i & 3], "performance", "bench", payload(i))
        if eng.unflushed >= 1000:
            await eng.flush()
    await eng.close()
    return time.perf_counter() - t0


def run_baseline(path: Path, n: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, type TEXT NOT NULL, component TEXT NOT NULL, "
        "scope TEXT NOT NULL, actor TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
    )
    t0 = time.perf_counter()
    prev = GENESIS_HASH
    rows = []
    for i in range(n):
        seq = i + 1
        data = payload(i)
        h = chain_hash(prev, canonical_encoding(seq, 0.0, TYPES[i & 3], "performance", "bench", "engine", data))
        rows.append((seq, 0.0, TYPES[i & 3], "performance", "bench", "engine", dumps_compact(data), prev, h))
        prev = h
        if len(rows) == 1000:
            con.execute("BEGIN")
            con.executemany(f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            con.execute("COMMIT")
            rows = []
    if rows:
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")
    con.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each; the best time of each is compared")
    args = ap.parse_args()
    base = eng = float("inf")
    same = True
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            base = min(base, run_baseline(Path(d) / "baseline.db", args.n))
            eng = min(eng, asyncio.run(run_engine(Path(d) / "engine.db", args.n)))
            con = sqlite3.connect(Path(d) / "engine.db")
            same = same and con.execute("SELECT count(*) FROM events").fetchone()[0] == args.n
            con.close()
    r_base, r_eng = args.n / base, args.n / eng
    print(f"{'pipeline':<34}{'events':>9}{'seconds':>10}{'events/s':>12}")
    print(f"{'baseline sqlite3 executemany+sha256':<34}{args.n:>9}{base:>10.2f}{r_base:>12,.0f}")
    print(f"{'opsdeck engine -> aiosqlite':<34}{args.n:>9}{eng:>10.2f}{r_eng:>12,.0f}")
    print(f"ratio opsdeck/baseline: {r_eng / r_base:.2f}x (target >= 0.5x); all rows stored: {same}")


if __name__ == "__main__":
    main()

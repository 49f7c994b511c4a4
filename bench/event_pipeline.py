"""Benchmark: the engine's event pipeline on the real event mix against plain sqlite3.

opsdeck: workflows of 1,000 tasks (their specs built before the timing, as the
baselines' rows are) run on 20 simulated agents through the whole engine until
``-n`` events: the mix of a real run (TASK_ASSIGNED / STARTED /
COMPLETED, PHASE_*, WORKFLOW_*, checkpoints), each event numbered, canonically
encoded, SHA-256 chained, folded by its reducer, group-committed to SQLite through
aiosqlite, and published to two subscribers (an event-line formatter, as the
headless printer and the console's log do, and a counter).

Baseline: the identical rows (the same types, payloads and actors, already in
memory as dicts) written with plain sqlite3 ``executemany`` in 1,000-row
transactions into the same schema (indexes and triggers: created by the store) with
the store's durability (WAL, ``synchronous=FULL``), computing the same canonical
encoding and chain with the same functions as the engine (``encode_data`` and
``chain_head`` per event as its emit, ``chain_rows`` per batch as its flush).

A second baseline, for reference, writes everything else the engine committed
besides the events, with the same plain sqlite3: its metric samples and finished
workflows' archive records in the events' transactions (as the engine does), and
its checkpoints with their history entries in transactions of their own. The goal's
ratio is against the first (events only).

The runs alternate in one process (engine, baselines, then baselines, engine, ...);
each is timed in wall seconds and in CPU seconds of the process (every thread:
aiosqlite's writer included; the engine's store thread is also shown on its own).
Printed: the best of each and the ratios, with the load average.
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import engine_on, spec

from core.events import GENESIS_HASH, Event, UnchainedRow, chain_head, chain_rows, encode_data
from core.store import EVENT_COLUMNS, EventRow, Store

Row = tuple[str, str, str, str, float, dict[str, Any]]
"""An event as the baseline gets it: (type, component, scope, actor, ts, data)."""


@dataclass
class Extra:
    """What the engine committed besides the events (the second baseline writes it too)."""

    series: list[tuple[int, str, str]] = field(default_factory=list)
    samples: list[tuple[int, float, float, bytes | None]] = field(default_factory=list)
    """Metrics rows as the engine wrote them (a batch's samples of one series in one row)."""
    archive: list[tuple[str, int, str, str]] = field(default_factory=list)
    checkpoints: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)


def other_threads_cpu() -> float:
    """CPU seconds so far of the process's threads other than this one (the store's)."""
    me = threading.get_ident()
    total = 0.0
    for t in threading.enumerate():
        if t.ident is not None and t.ident != me and t.is_alive():
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except OSError:  # it ended meanwhile
                pass
    return total


async def run_engine(path: Path, n: int) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, of which the store thread's, events) of the engine
    running workflows until ``n`` events."""
    # The workflows' specs are the run's input, built before it (as the baselines' rows are
    # in memory before theirs): every task gives at least three events (assigned, started,
    # completed), so n // 3000 + 2 workflows of 1,000 tasks reach n events.
    specs = [spec(f"wf{i:05d}", 1000) for i in range(n // 3000 + 2)]
    eng, clock = await engine_on(path)
    lines: list[int] = [0, 0]

    def printer(ev: Event) -> None:
        lines[0] += len(ev.line())

    def counter(ev: Event) -> None:
        lines[1] += 1

    eng.subscribe(printer)
    eng.subscribe(counter)
    t0, c0, s0 = time.perf_counter(), time.process_time(), other_threads_cpu()
    eng.create_pool("bench", ["x"], 0, 20)
    for _ in range(20):
        eng.add_agent("bench")
    i = 0
    while eng.state.seq < n:
        wid = f"wf{i:05d}"
        eng.create_workflow(specs[i])
        eng.start_workflow(wid)
        while eng.state.workflows.get(wid) is not None:
            clock.run_until(clock.now() + 1, budget=1000)
            await eng.flush()
        await eng.maintain()
        i += 1
    store_cpu = other_threads_cpu() - s0  # before close: the store's thread ends with it
    await eng.close()
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert lines[1] == eng.state.seq, "every committed event reached the subscribers"
    return took, cpu, store_cpu, eng.state.seq


def load_rows(path: Path) -> tuple[list[Row], Extra]:
    con = sqlite3.connect(path)
    rows = [
        (t, c, s, a, ts, json.loads(d))
        for t, c, s, a, ts, d in con.execute("SELECT type, component, scope, actor, ts, data FROM events ORDER BY seq")
    ]
    extra = Extra(
        con.execute("SELECT id, name, subject FROM metric_series ORDER BY id").fetchall(),
        con.execute("SELECT series, ts, value, earlier FROM metrics ORDER BY id").fetchall(),
        con.execute("SELECT workflow, finished_seq, status, record FROM archive ORDER BY finished_seq").fetchall(),
        con.execute(
            "SELECT id, seq, ts, kind, label, workflow, state, state_hash FROM checkpoints ORDER BY id"
        ).fetchall(),
        con.execute("SELECT part, key, from_seq, to_seq, entry, entry_hash FROM snapshot_history").fetchall(),
    )
    con.close()
    return rows, extra


def last_hash(path: Path) -> str:
    con = sqlite3.connect(path)
    row = con.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    con.close()
    return str(row[0])


def run_baseline(path: Path, rows: list[Row], extra: Extra | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of writing ``rows`` with their chain (and with
    ``extra``, the rest of what the engine committed)."""

    async def schema() -> None:
        st = await Store.open(path)  # the same tables, indexes and triggers
        await st.close()

    asyncio.run(schema())
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")  # the store's durability: a commit that returned is on disk
    sql = f"INSERT INTO events({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
    more = Extra() if extra is None else extra
    if more.series:
        con.executemany("INSERT INTO metric_series(id, name, subject) VALUES (?,?,?)", more.series)
    samples, archive, checkpoints = iter(more.samples), iter(more.archive), iter(more.checkpoints)
    sample, done, cp = next(samples, None), next(archive, None), next(checkpoints, None)
    t0, c0 = time.perf_counter(), time.process_time()
    prev = GENESIS_HASH

    def commit(batch: list[EventRow], final: bool = False) -> None:
        nonlocal sample, done, cp
        last_seq, last_ts = (batch[-1][0], batch[-1][1]) if not final else (len(rows) + 1, float("inf"))
        con.execute("BEGIN")
        con.executemany(sql, batch)
        if sample is not None:  # the samples taken while these events happened
            taken = []
            while sample is not None and sample[1] <= last_ts:
                taken.append(sample)
                sample = next(samples, None)
            con.executemany("INSERT INTO metrics(series, ts, value, earlier) VALUES (?,?,?,?)", taken)
        while done is not None and done[1] <= last_seq:
            con.execute("INSERT INTO archive(workflow, finished_seq, status, record) VALUES (?,?,?,?)", done)
            done = next(archive, None)
        con.execute("COMMIT")
        while cp is not None and cp[1] <= last_seq:
            con.execute("BEGIN")
            con.execute(
                "INSERT INTO checkpoints(id, seq, ts, kind, label, workflow, state, state_hash) VALUES (?,?,?,?,?,?,?,?)",
                cp,
            )
            con.executemany(
                "INSERT OR REPLACE INTO snapshot_history(part, key, from_seq, to_seq, entry, entry_hash) "
                "VALUES (?,?,?,?,?,?)",
                [h for h in more.history if h[2] == cp[1]],
            )
            con.execute("COMMIT")
            cp = next(checkpoints, None)

    held: list[UnchainedRow] = []  # encoded as the engine's emit does, chained per batch as its flush does
    for seq, (type_, comp, scope, actor, ts, data) in enumerate(rows, start=1):
        held.append((seq, ts, type_, comp, scope, actor, encode_data(data)[0], chain_head(type_, comp, scope, actor)))
        if len(held) == 1000:
            batch = chain_rows(prev, held)
            prev = batch[-1][8]
            commit(batch)
            held = []
    if held:
        commit(chain_rows(prev, held), final=True)
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
    eng_store: list[float] = []
    base_wall: list[float] = []
    base_cpu: list[float] = []
    full_wall: list[float] = []
    full_cpu: list[float] = []
    rows: list[Row] = []
    extra = Extra()
    n = 0
    with tempfile.TemporaryDirectory() as d:

        def engine(i: int) -> None:
            nonlocal rows, extra, n
            db = Path(d) / f"engine{i}.db"
            wall, cpu, store_cpu, n = asyncio.run(run_engine(db, args.n))
            eng_wall.append(wall)
            eng_cpu.append(cpu)
            eng_store.append(store_cpu)
            if not rows:
                rows, extra = load_rows(db)
            assert len(rows) == n, "every round writes the same events"

        def baseline(i: int) -> None:
            wall, cpu = run_baseline(Path(d) / f"baseline{i}.db", rows)
            base_wall.append(wall)
            base_cpu.append(cpu)

        def everything(i: int) -> None:
            wall, cpu = run_baseline(Path(d) / f"everything{i}.db", rows, extra)
            full_wall.append(wall)
            full_cpu.append(cpu)

        engine(0)  # the rows the baselines write
        baseline(0)
        assert last_hash(Path(d) / "baseline0.db") == last_hash(Path(d) / "engine0.db"), (
            "the baseline wrote the same chain"
        )
        everything(0)
        for i in range(1, args.repeat):
            for run in (everything, baseline, engine) if i % 2 else (engine, baseline, everything):
                run(i)
    mix: dict[str, int] = {}
    for r in rows:
        mix[r[0]] = mix.get(r[0], 0) + 1
    best = eng_cpu.index(min(eng_cpu))
    print("event mix: " + ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])[:6]))
    print(
        f"the engine also committed {sum(1 + len(s[3] or b'') // 16 for s in extra.samples):,} metric samples "
        f"in {len(extra.samples):,} rows, {len(extra.archive)} archive records "
        f"({sum(len(a[3]) for a in extra.archive) / 1e6:.1f} MB), {len(extra.checkpoints)} checkpoints"
    )
    print(
        f"{'pipeline (best of ' + str(args.repeat) + ', alternated)':<50}{'events':>9}{'wall s':>8}{'CPU s':>8}{'µs/ev':>7}"
    )
    for label, wall, cpu in (
        ("baseline sqlite3 executemany + chain", base_wall, base_cpu),
        ("  (reference: + samples, archive, checkpoints)", full_wall, full_cpu),
        ("opsdeck engine (reducers, store, subscribers)", eng_wall, eng_cpu),
    ):
        print(f"{label:<50}{n:>9}{min(wall):>8.2f}{min(cpu):>8.2f}{min(cpu) / n * 1e6:>7.1f}")
    print(
        f"  of the engine's best run: store thread {eng_store[best]:.2f} CPU s ({eng_store[best] / n * 1e6:.1f} µs/ev), "
        f"the rest {eng_cpu[best] - eng_store[best]:.2f} CPU s ({(eng_cpu[best] - eng_store[best]) / n * 1e6:.1f} µs/ev)"
    )
    print(
        f"events/s: baseline {n / min(base_wall):,.0f} wall, {n / min(base_cpu):,.0f} CPU; "
        f"opsdeck {n / min(eng_wall):,.0f} wall, {n / min(eng_cpu):,.0f} CPU"
    )
    print(
        f"ratio opsdeck/baseline: {min(base_wall) / min(eng_wall):.2f}x wall, {min(base_cpu) / min(eng_cpu):.2f}x CPU "
        f"(target >= 0.5x); against the reference baseline {min(full_wall) / min(eng_wall):.2f}x wall, "
        f"{min(full_cpu) / min(eng_cpu):.2f}x CPU; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

"""Console benchmark: a database of 1,000,000 events against an empty one, in one run.

For each database a fresh console process is launched (so resident memory is its
own) and reports: launch to first frame, launch to the event log's first filled
frame, the event log's fetch latency and frame render time at its top, middle and
end, the engine's replay time, and resident memory. The parent prints a table with
the ratios and checks the targets: first frame <= 1.5x empty, a frame <= 16 ms,
memory <= 1.2x empty.

    .venv/bin/python bench/console_bench.py [--events 1000000] [--keep DIR]

The big database is made fast: a real demo prefix written by the engine, then
observation events appended with plain sqlite3 ``executemany`` into the schema the
store created, each row hash-chained exactly as the engine chains them (so
``opsdeck verify`` accepts it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (160, 48)
FILLER_TYPES = [
    ("RESOURCE_THRESHOLD", "resource", "allocation"),
    ("SYSTEM_THRESHOLD", "system", "global"),
    ("AGENT_PERFORMANCE_ALERT", "agent", "performance"),
    ("PERFORMANCE_SAMPLE", "performance", "monitoring"),
]


# -- building the databases ----------------------------------------------------
def build_empty(path: Path) -> None:
    from core.store import Store

    async def go() -> None:
        st = await Store.open(path)
        await st.close()

    asyncio.run(go())


def build_big(path: Path, total: int, seed: int = 0) -> dict[str, float]:
    """A real demo prefix, then hash-chained filler up to ``total`` events."""
    from core.config import Config
    from core.events import canonical_encoding, canonical_json, chain_hash
    from core.projection import REDUCERS
    from core.session import open_sim

    t0 = time.perf_counter()

    async def prefix() -> tuple[int, str, float]:
        eng = await open_sim(path, Config(), seed=seed, demo=True)
        await eng.advance(1800)
        await eng.close()
        st = sqlite3.connect(path)
        seq, h, ts = st.execute("SELECT seq, hash, ts FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        st.close()
        return seq, h, ts

    seq, prev, ts = asyncio.run(prefix())
    t_prefix = time.perf_counter() - t0
    for t, _, _ in FILLER_TYPES:
        assert t not in REDUCERS, f"{t} has a reducer; filler must be observation-only"
    rng = random.Random(seed)
    wfs = ["workflow_001", "workflow_002", "workflow_003", "impl_auth_001", "debug_perf_002", "migration_workflow_001"]
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    sql = "INSERT INTO events(seq, ts, type, component, scope, actor, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)"
    batch: list[tuple] = []
    t1 = time.perf_counter()
    while seq < total:
        seq += 1
        ts = round(ts + 0.05, 3)
        type_, comp, scope = FILLER_TYPES[seq % len(FILLER_TYPES)]
        data = {"metric": "cpu_pct" if seq % 2 else "memory_pct", "value": round(rng.uniform(40, 99), 2),
                "threshold": 80.0, "workflow_id": wfs[seq % len(wfs)], "sample": seq}
        if seq % 97 == 0:
            data["severity"] = "high"
        h = chain_hash(prev, canonical_encoding(seq, ts, type_, comp, scope, "monitor", data))
        batch.append((seq, ts, type_, comp, scope, "monitor", canonical_json(data), prev, h))
        prev = h
        if len(batch) >= 50_000:
            con.executemany(sql, batch)
            con.commit()
            batch.clear()
    if batch:
        con.executemany(sql, batch)
        con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return {"prefix_s": t_prefix, "filler_s": time.perf_counter() - t1}


# -- the child: one console, measured --------------------------------------------
def child(db: str, t_launch: float) -> None:
    import psutil
    from textual.geometry import Region  # noqa: F401  (import cost belongs to the launch)

    from core.config import Config
    from tui.app import OpsdeckApp
    from tui.widgets.event_log import EventLog

    out: dict[str, object] = {}

    async def go() -> None:
        app = OpsdeckApp(db=Path(db), config=Config(), demo=False, speed=0)
        async with app.run_test(size=SIZE) as pilot:
            while app.first_frame_wall is None:
                await asyncio.sleep(0.001)
            out["first_frame_s"] = app.first_frame_wall - t_launch
            log = app.query_one(EventLog)
            while not (log.head == 0 and app.link_ready.is_set()) and not (log.head > 0 and log.visible_ready()):
                await asyncio.sleep(0.002)
            await pilot.pause(0)
            out["log_filled_s"] = time.time() - t_launch
            t_ready = time.perf_counter()
            await app.link_opened(timeout=600)
            out["engine_ready_after_first_frame_s"] = time.time() - (app.first_frame_wall or 0)
            out["events"] = log.head
            await pilot.pause(0.2)
            h = log.scrollable_content_region.height
            positions = {"top": 0, "middle": max(log.count // 2, 0), "end": max(log.count - h, 0)}
            for name, y in positions.items():
                log.follow = name == "end"
                t = time.perf_counter()
                log.scroll_to(y=y, animate=False, immediate=True)
                log.refresh()
                await pilot.pause(0)
                while log.count and not log.visible_ready():
                    await asyncio.sleep(0.001)
                fetch_ms = (time.perf_counter() - t) * 1000
                frames = []
                for _ in range(20):
                    log.lines.clear()  # rendering from cached events: what a scroll frame costs
                    t = time.perf_counter()
                    for yy in range(h):
                        log.render_line(yy)
                    frames.append((time.perf_counter() - t) * 1000)
                full = []
                for _ in range(10):
                    log.lines.clear()
                    t = time.perf_counter()
                    app.screen._compositor.render_update(full=True)  # the whole screen, as a frame
                    full.append((time.perf_counter() - t) * 1000)
                out[f"{name}_fetch_ms"] = fetch_ms
                out[f"{name}_log_frame_ms"] = statistics.median(frames)
                out[f"{name}_screen_frame_ms"] = statistics.median(full)
            out["rss_mb"] = psutil.Process().memory_info().rss / 1e6
            out["ui_wait_s"] = time.perf_counter() - t_ready
            await app.shutdown()

    asyncio.run(go())
    print("RESULT " + json.dumps(out), flush=True)


def run_child(db: Path) -> dict[str, float]:
    t = time.time()
    proc = subprocess.run([sys.executable, __file__, "--child", str(db), "--t0", repr(t)], capture_output=True, text=True,
                          timeout=1200, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="build (or reuse) the databases in DIR")
    ap.add_argument("--runs", type=int, default=3, help="console launches per database (medians are reported)")
    ap.add_argument("--child")
    ap.add_argument("--t0", type=float)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.t0)
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="opsdeck-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    empty, big = work / "empty.db", work / f"big-{args.events}.db"
    if not empty.exists():
        build_empty(empty)
    if not big.exists():
        t = time.perf_counter()
        info = build_big(big, args.events)
        print(f"built {args.events:,} events in {time.perf_counter() - t:.1f}s "
              f"(demo prefix {info['prefix_s']:.1f}s, filler {info['filler_s']:.1f}s); {big.stat().st_size / 1e6:.0f} MB")
    results: dict[str, list[dict[str, float]]] = {"empty": [], "big": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine load
        results["empty"].append(run_child(empty))
        results["big"].append(run_child(big))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    e, b = med["empty"], med["big"]
    rows = [
        ("events", "events", "{:,.0f}"),
        ("launch -> first frame (s)", "first_frame_s", "{:.3f}"),
        ("launch -> event log filled (s)", "log_filled_s", "{:.3f}"),
        ("engine replay after first frame (s)", "engine_ready_after_first_frame_s", "{:.2f}"),
        ("log top: fetch (ms)", "top_fetch_ms", "{:.1f}"),
        ("log top: log frame (ms)", "top_log_frame_ms", "{:.2f}"),
        ("log top: screen frame (ms)", "top_screen_frame_ms", "{:.2f}"),
        ("log middle: fetch (ms)", "middle_fetch_ms", "{:.1f}"),
        ("log middle: log frame (ms)", "middle_log_frame_ms", "{:.2f}"),
        ("log middle: screen frame (ms)", "middle_screen_frame_ms", "{:.2f}"),
        ("log end: fetch (ms)", "end_fetch_ms", "{:.1f}"),
        ("log end: log frame (ms)", "end_log_frame_ms", "{:.2f}"),
        ("log end: screen frame (ms)", "end_screen_frame_ms", "{:.2f}"),
        ("resident memory (MB)", "rss_mb", "{:.1f}"),
    ]
    print(f"\nopsdeck console benchmark ({args.runs} launches each, medians; terminal {SIZE[0]}x{SIZE[1]})")
    print(f"{'measure':<38}{'empty':>12}{'1M events':>14}{'ratio':>9}")
    for label, key, fmt in rows:
        ratio = f"{b[key] / e[key]:>8.2f}x" if e[key] else f"{'—':>9}"
        print(f"{label:<38}{fmt.format(e[key]):>12}{fmt.format(b[key]):>14}{ratio}")
    worst_frame = max(b[f"{p}_screen_frame_ms"] for p in ("top", "middle", "end"))
    checks = [
        ("first frame <= 1.5x empty", b["first_frame_s"] <= 1.5 * e["first_frame_s"]),
        ("a frame <= 16 ms", worst_frame <= 16.0),
        ("memory <= 1.2x empty", b["rss_mb"] <= 1.2 * e["rss_mb"]),
    ]
    print()
    for what, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

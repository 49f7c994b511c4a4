"""Console benchmark: what a user waits for on a log of 1,000,000 real events, against
an empty database, in one run.

The big log is real work written by the engine with its store (workflows of 1,000
tasks on 20 simulated agents: every event has its reducer, the checkpoints are the
ones the engine takes itself). It is measured with its checkpoints after head - 20,000
removed (issue #22: an open replays the last 20,000-odd events, not the best case of a
checkpoint at the head); ``--best`` adds the log as built (its last checkpoint at the
head) and ``--bare`` a copy without any checkpoint (every event replayed). Every launch
opens a fresh copy of its database (a console hosts what it opens and writes to it).
For each database a fresh console process is launched (so resident memory is its own)
and reports, in wall time and in the CPU time of the process (all its threads: the
fairer figure on a shared machine): launch to first frame, to *panes filled* (the
engine's state is open and drawn), to *a command answered* (``/coordination-hub
list-workflows`` through the console's link), to the event log filled (its default
view's rows counted and the last screen of them read); the log's fetch latency; a
whole-screen frame; resident memory. The host's modules load after the first frame
(tui/link_open.py): the engine's part is from their import to panes filled. Targets:
panes filled <= 1.5x empty and the engine's part < 1 s; memory <= 1.3x empty.

    .venv/bin/python bench/console_bench.py [--events 1000000] [--keep DIR] [--runs 3] [--best] [--bare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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


# -- building the databases ----------------------------------------------------
def build_empty(path: Path) -> None:
    from core.store import Store

    async def go() -> None:
        st = await Store.open(path)
        await st.close()

    asyncio.run(go())


def build_big(path: Path, total: int, seed: int = 0) -> dict[str, float]:
    """Real work through the engine with its store, up to ``total`` events: workflows of
    1,000 tasks each (created, assigned, started, progress, completed, phases) run on
    20 simulated agents, every event folded by its reducer, with the checkpoints the
    engine takes itself (by time and every ``intervals.checkpoint_events`` events)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from history import engine_on, spec  # the same workload as bench/history.py

    t0 = time.perf_counter()

    async def go() -> int:
        eng, clock = await engine_on(path)
        eng.create_pool("bench", ["x"], 0, 20)
        for _ in range(20):
            eng.add_agent("bench")
        i = 0
        while eng.state.seq < total:
            wid = f"wf{i:05d}"
            eng.create_workflow(spec(wid, 1000))
            eng.start_workflow(wid)
            clock.run_until(clock.now() + 1)
            await eng.flush()
            await eng.maintain()
            i += 1
        await eng.close()
        return i

    n = asyncio.run(go())
    return {"build_s": time.perf_counter() - t0, "workflows": n}


def copy_db(src: Path, dst: Path) -> Path:
    """``src`` with its anchor (without it the copy reports a loss) at ``dst``."""
    shutil.copy(src, dst)
    shutil.copy(f"{src}.head", f"{dst}.head")
    return dst


def checkpoints_before(src: Path, dst: Path, behind: int | None) -> None:
    """The same log keeping only the checkpoints at least ``behind`` events before its
    head (None: no checkpoint at all: an open replays every event)."""
    copy_db(src, dst)
    con = sqlite3.connect(dst)
    head = con.execute("SELECT max(seq) FROM events").fetchone()[0]
    con.execute("DELETE FROM checkpoints WHERE seq > ?", (-1 if behind is None else head - behind,))
    con.commit()
    con.close()


def describe(db: Path) -> tuple[int, int, int | None]:
    """(events, checkpoints, the newest checkpoint's seq)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    n_cp, last_cp = con.execute("SELECT count(*), max(seq) FROM checkpoints").fetchone()
    n_ev = con.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
    con.close()
    return n_ev, n_cp, last_cp


# -- the child: one console, measured --------------------------------------------
def child(db: str, t_launch: float) -> None:
    import psutil
    from textual.geometry import Region  # noqa: F401  (import cost belongs to the launch)

    import tui.link_open
    from core.config import Config
    from tui.app import OpsdeckApp
    from tui.widgets.event_log import EventLog

    out: dict[str, object] = {}

    def cpu() -> float:  # the process's CPU seconds, every thread (the engine opens in one)
        return time.process_time()

    imported = tui.link_open.host_modules

    async def host_modules() -> None:  # when the host's modules are in: the engine's open starts
        await imported()
        out["modules_s"] = time.time() - t_launch
        out["modules_cpu"] = cpu()

    tui.link_open.host_modules = host_modules

    async def go() -> None:
        app = OpsdeckApp(db=Path(db), config=Config(), demo=False, speed=0)
        async with app.run_test(size=SIZE) as pilot:
            while app.first_frame_wall is None:
                await asyncio.sleep(0.001)
            out["first_frame_s"] = app.first_frame_wall - t_launch
            out["first_frame_cpu"] = cpu()
            log = app.query_one(EventLog)
            while not app.link_ready.is_set():  # panes filled from the engine's state
                await asyncio.sleep(0.002)
            await pilot.pause(0)
            out["panes_filled_s"] = time.time() - t_launch
            out["panes_filled_cpu"] = cpu()
            link = await app.link_opened(timeout=600)
            t = time.perf_counter()
            resp = await link.send("/coordination-hub list-workflows")
            assert resp["status"] == "success", resp
            out["command_s"] = time.perf_counter() - t
            out["usable_s"] = time.time() - t_launch
            out["usable_cpu"] = cpu()
            out["workflows_listed"] = len(resp["result"]["workflows"])
            while log.head > 0 and not (log.count and log.visible_ready()):  # count 0: rows not yet counted
                await asyncio.sleep(0.002)
            out["log_filled_s"] = time.time() - t_launch
            out["log_filled_cpu"] = cpu()
            t_ready = time.perf_counter()
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


def run_child(db: Path, work: Path) -> dict[str, float]:
    """One console on a fresh copy of ``db`` (deleted after)."""
    run = copy_db(db, work / "launch.db")
    try:
        t = time.time()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(run), "--t0", repr(t)],
            capture_output=True,
            text=True,
            timeout=1200,
            cwd=ROOT,
        )
    finally:
        for suffix in ("", ".head", "-wal", "-shm", ".lease"):
            Path(f"{run}{suffix}").unlink(missing_ok=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="DIR", help="build (or reuse) the databases in DIR")
    ap.add_argument("--runs", type=int, default=3, help="console launches per database (medians are reported)")
    ap.add_argument("--behind", type=int, default=20_000, help="the newest checkpoint kept is this far before the head")
    ap.add_argument("--best", action="store_true", help="also the log as built (a checkpoint at its head)")
    ap.add_argument("--bare", action="store_true", help="also the log without any checkpoint (slow: ~1 min a launch)")
    ap.add_argument("--child")
    ap.add_argument("--t0", type=float)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.t0)
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="opsdeck-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    empty, big = work / "empty.db", work / f"real-{args.events}.db"
    behind = work / f"real-{args.events}-behind-{args.behind}.db"
    bare = work / f"real-{args.events}-nocheckpoint.db"
    if not empty.exists():
        build_empty(empty)
    if not big.exists():
        info = build_big(big, args.events)
        print(
            f"built {args.events:,} real events ({info['workflows']:.0f} workflows of 1,000 tasks) in "
            f"{info['build_s']:.1f}s; {big.stat().st_size / 1e6:.0f} MB"
        )
    if not behind.exists():
        checkpoints_before(big, behind, args.behind)
    if args.bare and not bare.exists():
        checkpoints_before(big, bare, None)
    n_ev, n_cp, last_cp = describe(big)
    label = f"{n_ev / 1e6:.1f}M" if n_ev >= 1e6 else f"{n_ev / 1e3:.0f}k"
    b_ev, b_cp, b_last = describe(behind)
    assert b_last is not None and b_ev - b_last >= args.behind, (b_ev, b_last)
    print(
        f"{n_ev:,} events; the engine's own checkpoints: {n_cp}, the last at seq {last_cp:,} ({n_ev - last_cp:,} before the head)"
    )
    print(
        f"measured: a copy keeping {b_cp} of them, the newest at seq {b_last:,} ({b_ev - b_last:,} events before the head)"
    )
    print(f"load average {os.getloadavg()[0]:.1f}")
    main_label = f"{label}, {b_ev - b_last:,} behind"
    dbs = {"empty": empty, main_label: behind}
    if args.best:
        dbs[f"{label}, cp at head"] = big
    if args.bare:
        dbs[f"{label}, no checkpoint"] = bare
    results: dict[str, list[dict[str, float]]] = {k: [] for k in dbs}
    for _ in range(args.runs):  # interleaved, so all see the same machine load
        for k, db in dbs.items():
            results[k].append(run_child(db, work))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in results.items()}
    e = med["empty"]
    rows = [
        ("workflows listed by the command", "workflows_listed", "{:,.0f}"),
        ("launch -> first frame (s)", "first_frame_s", "{:.3f}"),
        ("  CPU (s)", "first_frame_cpu", "{:.3f}"),
        ("launch -> host's modules imported (s)", "modules_s", "{:.3f}"),
        ("  CPU (s)", "modules_cpu", "{:.3f}"),
        ("launch -> panes filled (s)", "panes_filled_s", "{:.3f}"),
        ("  CPU (s)", "panes_filled_cpu", "{:.3f}"),
        ("launch -> a command answered (s)", "usable_s", "{:.3f}"),
        ("  CPU (s)", "usable_cpu", "{:.3f}"),
        ("  that command (list-workflows) (s)", "command_s", "{:.3f}"),
        ("launch -> event log filled (s)", "log_filled_s", "{:.3f}"),
        ("  CPU (s)", "log_filled_cpu", "{:.3f}"),
        ("log top: fetch (ms)", "top_fetch_ms", "{:.1f}"),
        ("log middle: fetch (ms)", "middle_fetch_ms", "{:.1f}"),
        ("log end: fetch (ms)", "end_fetch_ms", "{:.1f}"),
        ("log end: screen frame (ms)", "end_screen_frame_ms", "{:.2f}"),
        ("resident memory (MB)", "rss_mb", "{:.1f}"),
    ]
    print(f"\nopsdeck console benchmark ({args.runs} launches each, medians; terminal {SIZE[0]}x{SIZE[1]})")
    head = "".join(f"{k:>26}{'ratio':>8}" for k in list(dbs)[1:])
    print(f"{'measure':<38}{'empty':>12}{head}")
    for what, key, fmt in rows:
        line = f"{what:<38}{fmt.format(e[key]):>12}"
        for k in list(dbs)[1:]:
            v = med[k][key]
            line += f"{fmt.format(v):>26}" + (f"{v / e[key]:>7.2f}x" if e[key] else f"{'—':>8}")
        print(line)
    print(f"load average {os.getloadavg()[0]:.1f}")
    b = med[main_label]
    checks = [
        (f"panes filled, {main_label} <= 1.5x empty", b["panes_filled_s"] <= 1.5 * e["panes_filled_s"]),
        ("  in CPU time <= 1.5x empty", b["panes_filled_cpu"] <= 1.5 * e["panes_filled_cpu"]),
        (
            f"panes filled, {main_label}: the engine's part (after the host's modules are imported) < 1 s",
            b["panes_filled_s"] - b["modules_s"] < 1.0,
        ),
        (f"a command answered, {main_label} <= 1.5x empty", b["usable_s"] <= 1.5 * e["usable_s"]),
        (f"memory, {main_label} <= 1.3x empty", b["rss_mb"] <= 1.3 * e["rss_mb"]),
    ]
    print()
    for what, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

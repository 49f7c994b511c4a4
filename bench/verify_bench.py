"""Benchmark: ``opsdeck verify`` of a big log against a baseline doing the same work.

``opsdeck verify --db DB`` runs as a user runs it: a fresh process; the whole chain,
every checkpoint by hash and by replay, SQLite's ``integrity_check``. The baseline is
a fresh process too (``--baseline``): plain sqlite3 and the same primitives, one
loop, no store, no threads: ``integrity_check``; per row the sequence, the previous-hash
link, the SHA-256 chain hash, the JSON decode (orjson, as verify) and the canonical
check, the fold (``State.apply``); the replay's state hash at each checkpoint's seq;
each checkpoint's text hash; the kept history entries against the checkpoints'
digests; the collector's thresholds set as the verify verb sets them. Runs are
interleaved (the order alternates each round); CPU seconds of each child (user +
system, ``wait4``) beside wall seconds, and its peak RSS. The machine's rates,
measured in this process: SHA-256 over as many bytes as the chain hashes (in 1 KB
pieces), and SQLite scanning the events table from Python.

Goals: CPU <= ~1.2x the baseline, peak RSS <= 150 MB.

usage: python bench/verify_bench.py DB [--repeat N] [--tree DIR ...]
  --tree DIR: also time ``opsdeck verify`` from another checkout (e.g. main before a change)
  DB is read only (verify opens it read-only); bench/store_bench.py verify runs this on a copy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline(db: Path, thresholds: tuple[int, int, int]) -> dict[str, int]:
    """The whole verify's work in one plain loop (runs in the ``--baseline`` child), with
    the collector ``thresholds`` the verify verb sets (given on the command line: importing
    ``core.engine`` for them would charge the baseline an import it does not need)."""
    sys.path.insert(0, str(ROOT))
    import gc

    import orjson

    from core.event_types import EVENTS
    from core.events import GENESIS_HASH, Event, canonical_json, chain_next
    from core.projection import State
    from core.projection_history import DIGEST_KEYS, is_compact, kept_problems

    gc.set_threshold(*thresholds)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    problems = con.execute("PRAGMA integrity_check").fetchall()
    assert problems == [("ok",)], problems
    at: dict[int, list[str]] = {}
    for seq, h in con.execute("SELECT seq, state_hash FROM checkpoints"):
        at.setdefault(seq, []).append(h)
    state = State(EVENTS.folds)
    prev, n = GENESIS_HASH, 0
    for seq, ts, type_, comp, scope, actor, data, p, h in con.execute(
        "SELECT seq, ts, type, component, scope, actor, data, prev_hash, hash FROM events ORDER BY seq"
    ):
        payload = orjson.loads(data)
        if seq != n + 1 or p != prev or chain_next(p, seq, ts, type_, comp, scope, actor, data) != h:
            raise SystemExit(f"baseline: chain broken at {seq}")
        if canonical_json(payload) != data:
            raise SystemExit(f"baseline: not the canonical text at {seq}")
        state.apply(Event(seq, ts, type_, comp, scope, payload, actor))
        if seq in at and state.state_hash() not in at[seq]:
            raise SystemExit(f"baseline: replay differs at checkpoint seq {seq}")
        prev, n = h, n + 1
    digests = []
    for cp_id, seq, stored, text in con.execute("SELECT id, seq, state_hash, state FROM checkpoints"):
        if hashlib.sha256(text.encode()).hexdigest() != stored:
            raise SystemExit(f"baseline: checkpoint {cp_id} does not match its hash")
        snap = orjson.loads(text)
        if is_compact(snap):
            digests.append((cp_id, seq, {part: snap.get(k) for part, k in DIGEST_KEYS.items()}))
    kept = con.execute("SELECT part, key, from_seq, to_seq, entry FROM snapshot_history").fetchall()
    bad = kept_problems(kept, digests)
    if bad:
        raise SystemExit(f"baseline: kept entries differ: {bad}")
    con.close()
    return {"events": n}


def child(argv: list[str], cwd: Path) -> dict[str, float]:
    """Run one child; its own CPU seconds, wall seconds, peak RSS (``wait4``) and output."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{argv[2:]} exited {p.returncode}: {out.decode(errors='replace')[-600:]}")
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "wall": wall,
        "rss_mb": ru.ru_maxrss / 1024,
        "out": out.decode(errors="replace"),  # type: ignore[dict-item]
    }


HASHED_BYTES = (
    "SELECT sum(length(CAST(prev_hash AS BLOB)) + length(CAST(data AS BLOB)) + length(CAST(type AS BLOB)) "
    "+ length(CAST(component AS BLOB)) + length(CAST(scope AS BLOB)) + length(CAST(actor AS BLOB)) "
    "+ length(CAST(seq AS TEXT)) + length(CAST(ts AS TEXT)) + 17) FROM events"
)
"""The bytes the chain hashes: the previous hash and the envelope ``[seq,ts,"type",...,data]``
(SQLite's text of ``ts`` standing in for Python's repr, which may differ by a digit)."""


def machine_rates(db: Path) -> tuple[int, float, float]:
    """(bytes the chain hashes, CPU seconds of this process to SHA-256 as many bytes
    in 1 KB pieces, CPU seconds for SQLite to hand every events row to Python)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    nbytes = int(con.execute(HASHED_BYTES).fetchone()[0] or 0)
    con.close()
    piece = b"x" * 1024
    c0 = time.process_time()
    for _ in range(nbytes // 1024 + 1):
        hashlib.sha256(piece).digest()
    sha = time.process_time() - c0
    c0 = time.process_time()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for _row in con.execute("SELECT * FROM events ORDER BY seq"):
        pass
    con.close()
    return nbytes, sha, time.process_time() - c0


def compare(db: Path, repeat: int = 3, trees: list[Path] | None = None) -> dict[str, list[dict[str, float]]]:
    """Interleaved runs of verify (this checkout and ``trees``) and the baseline; prints the table."""
    sys.path.insert(0, str(ROOT))
    from core.collector import GC_THRESHOLDS

    gc_arg = ",".join(map(str, GC_THRESHOLDS))
    runs: dict[str, tuple[list[str], Path]] = {
        "opsdeck verify": ([sys.executable, "-m", "opsdeck", "verify", "--db", str(db)], ROOT),
        "baseline (same work)": (
            [sys.executable, str(Path(__file__).resolve()), "--baseline", str(db), "--gc", gc_arg],
            ROOT,
        ),
    }
    for tree in trees or []:
        runs[f"opsdeck verify ({tree})"] = ([sys.executable, "-m", "opsdeck", "verify", "--db", str(db)], tree)
    got: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    load = [os.getloadavg()[0]]
    for r in range(repeat):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for k in order:
            got[k].append(child(*runs[k]))
            load.append(os.getloadavg()[0])
            print(f"  round {r + 1}: {k}: {got[k][-1]['cpu']:.2f} CPU s, {got[k][-1]['wall']:.2f} s wall", flush=True)
    base = got["baseline (same work)"]
    info = json.loads(str(base[-1]["out"]).strip().splitlines()[-1])
    nbytes, sha, scan = machine_rates(db)
    print(
        f"\n{info['events']:,} events in {db.name}; best and median of {repeat}, interleaved; "
        f"load average {min(load):.1f}-{max(load):.1f}"
    )
    print(f"{'':34}{'CPU s':>8}{'median':>8}{'wall s':>8}{'median':>8}{'CPU x':>7}{'wall x':>7}{'RSS MB':>7}")
    for k, xs in got.items():
        # Each round's ratio to that round's baseline (the two saw the same load), the median of them.
        cpu_x = statistics.median(x["cpu"] / b["cpu"] for x, b in zip(xs, base, strict=True))
        wall_x = statistics.median(x["wall"] / b["wall"] for x, b in zip(xs, base, strict=True))
        print(
            f"{k[:34]:34}{min(x['cpu'] for x in xs):8.2f}{statistics.median(x['cpu'] for x in xs):8.2f}"
            f"{min(x['wall'] for x in xs):8.2f}{statistics.median(x['wall'] for x in xs):8.2f}"
            f"{cpu_x:7.2f}{wall_x:7.2f}{max(x['rss_mb'] for x in xs):7.0f}"
        )
    print("(CPU x, wall x: the median over rounds of each round's ratio to that round's baseline)")
    ours = min(x["cpu"] for x in got["opsdeck verify"])
    print(
        f"machine (CPU s, this process): SHA-256 of the {nbytes / 2**20:.0f} MB the chain hashes "
        f"{sha:.2f} (verify {ours / sha:.1f}x), SQLite scan of the events {scan:.2f} (verify {ours / scan:.1f}x), "
        f"both {sha + scan:.2f} (verify {ours / (sha + scan):.1f}x)"
    )
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append", help="another checkout whose verify is timed too")
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gc", default="700,10,10", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        g0, g1, g2 = (int(x) for x in args.gc.split(","))
        print(json.dumps(baseline(args.db, (g0, g1, g2))))
        return 0
    compare(args.db, args.repeat, args.tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())

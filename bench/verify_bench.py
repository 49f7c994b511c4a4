"""Benchmark: ``opsdeck verify`` on a big log against a plain scan of the same chain.

``opsdeck verify --db DB`` runs as a user runs it (a fresh process): the whole chain,
every checkpoint by hash and by replay. Its wall time and peak resident memory are
measured. Baseline, in this process: plain sqlite3 reading every row and recomputing
the same SHA-256 chain (no folding, no checkpoints). Target: bounded memory (<= 150
MB) and <= 2x the plain scan.

usage: python bench/verify_bench.py DB   (e.g. the 1M-event database console_bench.py --keep leaves)
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import GENESIS_HASH, canonical_envelope, chain_hash  # noqa: E402


def plain_scan(db: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    prev, n = GENESIS_HASH, 0
    for seq, ts, type_, comp, scope, actor, data, p, h in con.execute(
        "SELECT seq, ts, type, component, scope, actor, data, prev_hash, hash FROM events ORDER BY seq"
    ):
        if p != prev or chain_hash(p, canonical_envelope(seq, ts, type_, comp, scope, actor, data)) != h:
            raise SystemExit(f"plain scan: chain broken at {seq}")
        prev, n = h, n + 1
    con.close()
    return time.perf_counter() - t0, n


def main() -> int:
    db = Path(sys.argv[1])
    base, n = plain_scan(db)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "opsdeck", "verify", "--db", str(db)], cwd=ROOT, capture_output=True, text=True
    )
    took = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{n:,} events in {db.name}")
    print(f"plain scan (sqlite3 + chain)        {base:8.2f} s")
    print(
        f"opsdeck verify (fresh process)      {took:8.2f} s   {took / base:.2f}x   peak RSS {peak_mb:.0f} MB   exit {out.returncode}"
    )
    print((out.stdout or out.stderr).strip().splitlines()[-1][:200] if (out.stdout or out.stderr) else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

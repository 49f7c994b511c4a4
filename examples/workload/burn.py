"""A bounded CPU and memory burner: real load for the examples, the tests and the benchmark.

usage: burn.py [--seconds S] [--mb MB] [--processes N]
Holds MB megabytes (touched, so they are resident) and keeps N processes busy for S
seconds, printing OPSDECK_PROGRESS lines; then exits 0. Bounded: it always ends.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x = (x * 31 + 7) % 1_000_003


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--mb", type=int, default=0)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--step-mb", type=int, default=16)
    a = p.parse_args()
    held = []
    got = 0
    while got < a.mb:
        chunk = min(a.step_mb, a.mb - got)
        held.append(bytearray(b"\x01") * (chunk * 1024 * 1024))
        got += chunk
        print(f"OPSDECK_PROGRESS {0.2 * got / a.mb:.3f} holding {got} MB", flush=True)
    workers = [multiprocessing.Process(target=spin, args=(a.seconds,)) for _ in range(max(a.processes - 1, 0))]
    for w in workers:
        w.start()
    start = time.monotonic()
    end = start + a.seconds
    last = 0.0
    while time.monotonic() < end:
        spin(0.05)
        now = time.monotonic()
        if now - last >= 0.25:
            last = now
            print(f"OPSDECK_PROGRESS {0.2 + 0.8 * (now - start) / a.seconds:.3f}", flush=True)
    for w in workers:
        w.join()
    print(f"burned {a.processes} x {a.seconds:g}s holding {got} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

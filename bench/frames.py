"""Console frames under the live demo: what each frame and each pane refresh costs.

The console runs headless (Textual's test driver, 160x48) on the demo fleet at 30
simulated seconds per wall second for ``--seconds``. Measured in the console's own
process:

- a whole frame: the screen's update timer (``Screen._on_timer_update``: the layout
  pass when one is required, the dirty widgets' render, the compositor's update and
  its write to the driver), in wall time and in the CPU time of the console's thread
  (``time.thread_time``): on a machine shared with other busy processes the wall
  time of a frame is mostly waiting for a core, the CPU time is the frame's work;
- the compositor's update alone (part of a frame);
- every pane refresh tick (``_tick_panes``: the rows of one list, in turn pools,
  workflows, incidents, built from the state, and the header with the last), wall
  and CPU;
- the event loop's lag (a 5 ms ticker's overshoot: what a key press waits for).

Printed: count, median, p95, max; and the load average over the run.
Goal (issue #22): whole frame p95 <= 12 ms, max <= 33 ms.

usage: python bench/frames.py [--seconds 20] [--db PATH] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))] if xs else 0.0


class Timed:
    """Wall and thread-CPU milliseconds of each call of one method, patched in place."""

    def __init__(self, owner: type, name: str) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        real = getattr(owner, name)
        wall, cpu = self.wall, self.cpu

        def timed(*a, **k):  # type: ignore[no-untyped-def]
            t, c = time.perf_counter(), time.thread_time()
            try:
                return real(*a, **k)
            finally:
                cpu.append((time.thread_time() - c) * 1000)
                wall.append((time.perf_counter() - t) * 1000)

        setattr(owner, name, timed)

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()


def stats(xs: list[float]) -> dict[str, float]:
    return {
        "count": len(xs),
        "median": statistics.median(xs) if xs else 0.0,
        "p95": pct(xs, 0.95),
        "max": max(xs, default=0.0),
    }


async def measure(seconds: float, db: Path | None) -> dict[str, dict[str, float]]:
    """Run the console on the live demo for ``seconds``; each figure's stats (ms)."""
    from textual._compositor import Compositor
    from textual.screen import Screen

    from core.config import Config
    from tui.app import OpsdeckApp

    frames = Timed(Screen, "_on_timer_update")
    comp = Timed(Compositor, "render_update")
    db = db or Path(tempfile.mkdtemp(prefix="opsdeck-frames-")) / "demo.db"
    app = OpsdeckApp(db=db, config=Config(), demo=True, speed=30)
    ticks = Timed(OpsdeckApp, "_tick_panes")
    lags: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=120)
        await pilot.pause(1.0)
        for t in (frames, comp, ticks):
            t.clear()
        end = time.perf_counter() + seconds
        last = time.perf_counter()
        while time.perf_counter() < end:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            lags.append((now - last - 0.005) * 1000)
            last = now
        await app.shutdown()
    return {
        "frame, wall": stats(frames.wall),
        "frame, CPU": stats(frames.cpu),
        "compositor update, wall": stats(comp.wall),
        "pane refresh tick, wall": stats(ticks.wall),
        "pane refresh tick, CPU": stats(ticks.cpu),
        "event-loop lag": stats(lags),
    }


async def main(args: argparse.Namespace) -> int:
    load0 = os.getloadavg()[0]
    res = await measure(args.seconds, Path(args.db) if args.db else None)
    load1 = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"figures": res, "load": [load0, load1]}))
        return 0
    print(
        f"console under the live demo, {args.seconds:g} s at x30 (160x48); milliseconds; "
        f"load average {load0:.1f} -> {load1:.1f}"
    )
    print(f"{'':<28}{'count':>7}{'median':>9}{'p95':>9}{'max':>9}")
    for name, st in res.items():
        print(f"{name:<28}{st['count']:>7}{st['median']:>9.2f}{st['p95']:>9.2f}{st['max']:>9.2f}")
    cpu = res["frame, CPU"]
    met = cpu["p95"] <= 12 and cpu["max"] <= 33
    print(f"goal frame p95 <= 12 ms, max <= 33 ms (CPU of the frame): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--db", default=None)
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    sys.exit(asyncio.run(main(p.parse_args())))

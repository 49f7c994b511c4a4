"""Console frames under the live demo: what each frame and each pane refresh costs.

The console runs headless (Textual's test driver, 160x48) on the demo fleet at 30
simulated seconds per wall second for ``--seconds``. Measured in the console's own
process: every compositor update (a frame: the widgets' render and the screen's
composition), every pane refresh tick (``refresh_panes``: the rows of pools,
workflows, incidents and the header built from the state), and the event loop's lag
(a 5 ms ticker's overshoot: what a key press waits for). Printed: median, p95, max.
Target: frame p95 <= 8 ms, max <= 16 ms.

usage: python bench/frames.py [--seconds 20] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))] if xs else 0.0


async def main(args: argparse.Namespace) -> int:
    from textual._compositor import Compositor

    from core.config import Config
    from tui.app import OpsdeckApp

    frames: list[float] = []
    real = Compositor.render_update

    def timed(self, *a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return real(self, *a, **k)
        finally:
            frames.append((time.perf_counter() - t) * 1000)

    Compositor.render_update = timed  # type: ignore[method-assign]
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="opsdeck-frames-")) / "demo.db"
    app = OpsdeckApp(db=db, config=Config(), demo=True, speed=30)
    ticks: list[float] = []
    real_refresh = app.refresh_panes

    def refresh() -> None:
        t = time.perf_counter()
        real_refresh()
        ticks.append((time.perf_counter() - t) * 1000)

    app.refresh_panes = refresh  # type: ignore[method-assign]
    lags: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await app.link_opened(timeout=120)
        await pilot.pause(1.0)
        frames.clear()
        ticks.clear()
        end = time.perf_counter() + args.seconds
        last = time.perf_counter()
        while time.perf_counter() < end:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            lags.append((now - last - 0.005) * 1000)
            last = now
        await app.shutdown()
    print(f"console under the live demo, {args.seconds:g} s at x30 (160x48); milliseconds")
    print(f"{'':<28}{'count':>7}{'median':>9}{'p95':>9}{'max':>9}")
    for name, xs in (("frame (compositor update)", frames), ("pane refresh tick", ticks), ("event-loop lag", lags)):
        print(
            f"{name:<28}{len(xs):>7}{statistics.median(xs) if xs else 0:>9.2f}{pct(xs, 0.95):>9.2f}{max(xs, default=0):>9.2f}"
        )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--db", default=None)
    sys.exit(asyncio.run(main(p.parse_args())))

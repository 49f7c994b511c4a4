"""Drills across seeds: how often each of the five recoveries validates, and the
distribution of detection latency and recovery time (simulated seconds).

    python bench/drill_sweep.py              # seeds 0-19, all five drills
    python bench/drill_sweep.py --seeds 5 --drill network-partition

Each run is ``opsdeck drill NAME --seed S`` in process (a fresh database per run,
the plan approved by the drill). A run that does not validate is listed with its
reason. Figures are simulated time, so they do not depend on the machine's load.
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

from core.config import Config
from core.incidents.drills import DrillError, start_drill
from core.incidents.kinds import SCENARIOS
from core.session import open_sim


async def one(name: str, seed: int, d: Path) -> dict:  # type: ignore[type-arg]
    eng = await open_sim(d / f"{name}-{seed}.db", Config(), seed=seed, demo=True)
    try:
        drill = start_drill(eng, name, approve="auto")
        return await drill.run()
    except DrillError as exc:
        return {
            "validated": False,
            "reason": f"drill error: {exc}",
            "detection_latency_s": None,
            "recovery_time_s": None,
        }
    finally:
        await eng.close()


def dist(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    q = statistics.quantiles(xs, n=10) if len(xs) >= 2 else [xs[0]] * 9
    return f"min {min(xs):.0f} / median {statistics.median(xs):.0f} / p90 {q[8]:.0f} / max {max(xs):.0f}"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--drill", choices=SCENARIOS, action="append")
    args = ap.parse_args()
    names = args.drill or list(SCENARIOS)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="opsdeck-sweep-") as tmp:
        for name in names:
            reps = [await one(name, s, Path(tmp)) for s in range(args.seeds)]
            ok = [r for r in reps if r["validated"]]
            lat = [float(r["detection_latency_s"]) for r in reps if r.get("detection_latency_s") is not None]
            rec = [float(r["recovery_time_s"]) for r in ok if r.get("recovery_time_s") is not None]
            print(
                f"{name:<24} validated {len(ok)}/{len(reps)}  detection latency s: {dist(lat)}  recovery s: {dist(rec)}"
            )
            for s, r in enumerate(reps):
                if not r["validated"]:
                    print(f"  seed {s}: not validated: {r.get('reason') or r.get('status')}")
    print(f"# {len(names) * args.seeds} drills in {time.perf_counter() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

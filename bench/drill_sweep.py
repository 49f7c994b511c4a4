"""Drills across seeds: how often each of the five recoveries validates, the
distribution of detection latency and recovery time (simulated seconds), and how
often a plan with its acting steps removed validates (it must never).

    python bench/drill_sweep.py              # seeds 0-19, all five drills
    python bench/drill_sweep.py --seeds 5 --drill network-partition

Each run is ``opsdeck drill NAME --seed S`` in process (a fresh database per run,
the plan approved by the drill). The counterfactual run is the same drill whose
plan is edited, before its approval, to drop every acting step (registry kind
destructive or lifecycle), then approved. A run that does not validate is listed
with its reason. Recovery time runs from the plan's first acting step to the
criterion met. Figures are simulated time, so they do not depend on the machine's load.
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
from core.incidents import decisions
from core.incidents.drills import BUDGET_S, Drill, DrillError, start_drill
from core.incidents.kinds import SCENARIOS
from core.incidents.record import ACTING
from core.session import open_sim


async def without_acting_steps(drill: Drill) -> dict:  # type: ignore[type-arg]
    """Run the drill with its plan edited to drop every acting step not yet run."""
    eng = drill.engine
    end = eng.clock.now() + BUDGET_S
    edited = False
    while not drill.done and eng.clock.now() < end:
        await drill.step()
        plan = drill.plan()
        nxt = next((st for st in plan["steps"] if st["state"] != "completed"), None) if plan else None
        waiting = nxt is not None and nxt["state"] == "proposed" and nxt["approval"] == "manual"
        if not edited and plan is not None and plan["state"] == "proposed" and waiting:
            keep = [st["command"] for st in plan["steps"] if st["state"] == "completed" or st["category"] not in ACTING]
            decisions.edit(eng, plan["id"], keep, actor="bench")
            decisions.approve(eng, plan["id"], actor="bench")
            edited = True
    return await drill.report()


async def one(name: str, seed: int, d: Path, counterfactual: bool = False) -> dict:  # type: ignore[type-arg]
    eng = await open_sim(d / f"{name}-{seed}-{int(counterfactual)}.db", Config(), seed=seed, demo=True)
    try:
        if counterfactual:
            return await without_acting_steps(start_drill(eng, name, approve="manual"))
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
    q = statistics.quantiles(xs, n=10, method="inclusive") if len(xs) >= 2 else [xs[0]] * 9
    return f"min {min(xs):.0f} / median {statistics.median(xs):.0f} / p90 {q[8]:.0f} / max {max(xs):.0f}"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--drill", choices=SCENARIOS, action="append")
    ap.add_argument("--no-counterfactual", action="store_true", help="skip the runs with acting steps removed")
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
            if args.no_counterfactual:
                continue
            cf = [await one(name, s, Path(tmp), counterfactual=True) for s in range(args.seeds)]
            results: dict[str, int] = {}
            for r in cf:
                key = str(r.get("result") or r.get("status"))
                results[key] = results.get(key, 0) + 1
            wrong = [s for s, r in enumerate(cf) if r["validated"]]
            print(
                f"{'':<24} acting steps removed: validated {len(wrong)}/{len(cf)}  outcomes "
                + ", ".join(f"{k} {n}" for k, n in sorted(results.items()))
                + (f"  VALIDATED ON SEEDS {wrong}" if wrong else "")
            )
    runs = len(names) * args.seeds * (1 if args.no_counterfactual else 2)
    print(f"# {runs} drills in {time.perf_counter() - t0:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

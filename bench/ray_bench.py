"""Ray runtime benchmark against the local runtime, in the same run on the same machine.

1. Throughput: ``--agents`` agents run ``--tasks`` ``true`` tasks; tasks/s from the
   first task started to the last completed, on the local runtime (agent host
   processes) and on the Ray runtime (one actor per agent, a local Ray instance started
   by this script); the ratio ray / local.
2. Actor start: time from spawning an agent to its actor answering (Ray placed it,
   started a worker, ran ``__init__`` and ``hello``).
3. Failover on Ray: every agent runs a ``sleep``; ``ray.kill`` of ``--kills`` actors;
   time until each killed agent's task is running again on a replacement actor.

usage: python bench/ray_bench.py [--agents 20] [--tasks 1000] [--kills 3]
Every figure is measured from this run; nothing is canned.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray
from local_bench import drive, file_text, flat

from core.config import Config
from core.events import Event
from core.runtimes.local import open_local
from core.runtimes.ray import open_ray
from core.workflow_file import parse_workflow_text


async def one_runtime(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.agents
    config = Config.model_validate(
        {
            "capacity": {"agents": n, "cpu_cores": 64, "memory_gb": 64, "concurrent_workflows": 5},
            "workflow_limits": {"agents": n, "cpu_cores": 8, "memory_gb": 8},
        }
    )
    wf = parse_workflow_text(file_text(n))
    events: list[Event] = []
    opened = time.monotonic()
    if kind == "ray":
        engine, runtime = await open_ray(tmp / f"{kind}.db", wf, wf.specs(Path.cwd()), config, subscriber=events.append)
    else:
        engine, runtime = await open_local(
            tmp / f"{kind}.db", wf, wf.specs(Path.cwd()), config, subscriber=events.append
        )
    out: dict[str, Any] = {"open_s": time.monotonic() - opened}
    try:
        await drive(engine, lambda: engine.state.status_of("warmup").value == "completed", 120)
        if kind == "ray":
            await drive(engine, lambda: len(runtime.actor_started_s) >= n, 120)
            out["actor_start_s"] = sorted(runtime.actor_started_s)
            out["ray_init_s"] = runtime.cluster.init_s
        out["ready_s"] = time.monotonic() - opened

        engine.create_workflow(flat("throughput", args.tasks, ["true"], n))
        engine.start_workflow("throughput")
        await drive(engine, lambda: engine.state.status_of("throughput").value == "completed", 600)
        await engine.flush()  # subscribers get events once they are committed
        tput = [
            e
            for e in events
            if e.type in ("TASK_STARTED", "TASK_COMPLETED") and e.data["task"].startswith("throughput/")
        ]
        first = min(e.ts for e in tput if e.type == "TASK_STARTED")
        last = max(e.ts for e in tput if e.type == "TASK_COMPLETED")
        done = sum(1 for e in tput if e.type == "TASK_COMPLETED")
        out.update(done=done, wall_s=last - first, rate=done / (last - first))

        if kind == "ray" and args.kills:
            engine.create_workflow(flat("failover", n, ["sleep", str(args.sleep)], n))
            engine.start_workflow("failover")
            mark = len(events)
            await drive(engine, lambda: sum(1 for e in events[mark:] if e.type == "TASK_STARTED") >= n, 60)
            victims = sorted(a.id for a in engine.state.agents.values() if a.current_task and a.status.value == "busy")[
                : args.kills
            ]
            tasks = {a: engine.state.agents[a].current_task for a in victims}
            mark = len(events)
            killed_at = time.time()
            for a in victims:
                ray.kill(runtime.hosts[a].handle)

            def restarted() -> bool:
                got = {
                    e.data["task"] for e in events[mark:] if e.type == "TASK_STARTED" and e.data["agent"] not in victims
                }
                return all(t in got for t in tasks.values())

            await drive(engine, restarted, 120)
            await engine.flush()
            noticed = [
                e.ts - killed_at for e in events[mark:] if e.type == "AGENT_ERROR" and e.data["agent"] in victims
            ]
            again: dict[str, float] = {}
            for e in events[mark:]:
                if e.type == "TASK_STARTED" and e.data["task"] in tasks.values() and e.data["task"] not in again:
                    again[e.data["task"]] = e.ts - killed_at
            out.update(victims=victims, noticed=noticed, again=sorted(again.values()))
    finally:
        await runtime.shutdown()
        await engine.close()
    return out


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="opsdeck-raybench-"))
    local = await one_runtime("local", args, tmp)
    on_ray = await one_runtime("ray", args, tmp)
    starts = on_ray["actor_start_s"]
    rows = [
        ("agents / tasks", f"{args.agents} agents, {args.tasks} `true` tasks (fork+exec each)"),
        ("local runtime: throughput", f"{local['rate']:.1f} tasks/s ({local['done']} in {local['wall_s']:.2f} s)"),
        ("ray runtime: throughput", f"{on_ray['rate']:.1f} tasks/s ({on_ray['done']} in {on_ray['wall_s']:.2f} s)"),
        ("ratio ray / local", f"**{on_ray['rate'] / local['rate']:.2f}x**"),
        ("ray: local instance start (ray.init)", f"{on_ray['ray_init_s']:.2f} s"),
        (
            "ray: actor start (spawn -> hello)",
            f"median {statistics.median(starts):.2f} s, max {max(starts):.2f} s "
            f"({len(starts)} actors started together)",
        ),
        ("ray: open -> every agent ready", f"{on_ray['ready_s']:.2f} s (local runtime: {local['ready_s']:.2f} s)"),
    ]
    if args.kills:
        rows += [
            ("ray: actors killed (ray.kill)", f"{len(on_ray['victims'])} ({', '.join(on_ray['victims'])})"),
            ("ray: death noticed after", f"max {max(on_ray['noticed']):.3f} s"),
            (
                "ray: task running again after",
                f"mean {statistics.mean(on_ray['again']):.3f} s, "
                f"max {max(on_ray['again']):.3f} s (includes the replacement actor's start)",
            ),
        ]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)} | value")
    print(f"{'-' * w}-|-{'-' * 40}")
    for k, v in rows:
        print(f"{k.ljust(w)} | {v}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--sleep", type=float, default=20.0, help="failover task duration, seconds")
    sys.exit(asyncio.run(main(p.parse_args())))

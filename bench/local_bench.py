"""Local runtime benchmark: real agent processes running real (short) tasks.

1. Throughput, interleaved with the baseline: per round, a workflow of ``--tasks``
   ``true`` tasks on 20 agents from its start to completed (agents already up), then
   ``xargs -P2 -n1 true`` as many times; the ratio per round, its median and worst;
   the console process's own CPU share, the machine's CPU.
2. Failover: 20 agents each run ``sleep``; 3 agent hosts are SIGKILLed; time until
   each killed agent's task is running again on a replacement agent (heartbeat 1 s;
   target under two heartbeat intervals).

usage: python bench/local_bench.py [--rounds 3] [--tasks 1000] [--agents 20] [--kills 3] [--db PATH]
Every figure is measured from this run; nothing is canned.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import Config
from core.events import Event
from core.models import PhaseSpec, TaskSpec, WorkflowSpec
from core.runtimes.local import open_local
from core.workflow_file import parse_workflow_text

HEARTBEAT_S = 1.0


def file_text(agents: int) -> str:
    return f"""
[runtime]
heartbeat_s = {HEARTBEAT_S}
sample_s = 1.0
stop_grace_s = 1.0

[[pools]]
name = "bench"
specializations = ["bench"]
size = {agents}
max_size = {agents + 10}

[[workflows]]
id = "warmup"
allocation = {{ cpu_cores = 1, memory_gb = 1, agents = {agents} }}
  [[workflows.phases]]
  name = "p"
    [[workflows.phases.tasks]]
    id = "t"
    command = ["true"]
    specialization = "bench"
    cpu = 0.01
    memory_gb = 0
"""


def flat(wf_id: str, n: int, command: list[str], agents: int) -> WorkflowSpec:
    tasks = [
        TaskSpec(id=f"t{i:05d}", specialization="bench", command=command, cpu=0.01, memory_gb=0.0) for i in range(n)
    ]
    return WorkflowSpec(
        id=wf_id,
        priority=50,
        allocation={"cpu_cores": 4, "memory_gb": 4, "agents": agents},
        phases=[PhaseSpec(name="p", tasks=tasks)],
    )


async def drive(engine, until, timeout: float) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if until():
            return
        await asyncio.sleep(0.02)
        await engine.flush()
    raise SystemExit(f"benchmark stalled after {timeout}s")


def xargs_rate(n: int = 3000) -> float:
    """The machine's own spawn rate: ``xargs -P2`` running ``true`` n times (the baseline)."""
    import subprocess

    t0 = time.monotonic()
    subprocess.run(["xargs", "-P2", "-n1", "true"], input=("x\n" * n).encode(), check=True)
    return n / (time.monotonic() - t0)


async def main(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="opsdeck-bench-")) / "bench.db"
    n = args.agents
    config = Config.model_validate(
        {
            "capacity": {"agents": n, "cpu_cores": 64, "memory_gb": 64, "concurrent_workflows": 5},
            "workflow_limits": {"agents": n, "cpu_cores": 8, "memory_gb": 8},
        }
    )
    wf = parse_workflow_text(file_text(n))
    events: list[Event] = []
    engine, runtime = await open_local(db, wf, wf.specs(Path.cwd()), config, subscriber=events.append)
    me = psutil.Process()
    try:
        await drive(engine, lambda: engine.state.status_of("warmup").value == "completed", 30)
        await drive(engine, lambda: all(h.writer is not None for h in runtime.hosts.values()), 30)

        # -- 0. at rest: 20 idle agents, heartbeats and psutil sampling only -------------
        idle0 = me.cpu_times()
        r0 = time.monotonic()
        while time.monotonic() - r0 < args.idle:
            await asyncio.sleep(0.1)
            await engine.flush()
        idle1 = me.cpu_times()
        idle_cpu = (idle1.user - idle0.user + idle1.system - idle0.system) / (time.monotonic() - r0) * 100.0

        # -- 1. throughput: whole workflow runs, interleaved with the baseline ----------
        runs: list[tuple[float, float]] = []  # (opsdeck tasks/s, xargs spawns/s) per round
        cpu0 = me.cpu_times()
        psutil.cpu_percent(None)
        busy = 0.0
        for r in range(args.rounds):
            wid = f"throughput{r}"
            engine.create_workflow(flat(wid, args.tasks, ["true"], n))
            t0 = time.monotonic()
            engine.start_workflow(wid)
            await drive(engine, lambda wid=wid: engine.state.status_of(wid).value == "completed", 600)
            dt = time.monotonic() - t0
            busy += dt
            runs.append(
                (args.tasks / dt, await asyncio.to_thread(xargs_rate, args.tasks))
            )  # the loop keeps hearing heartbeats
        cpu1 = me.cpu_times()
        sys_cpu = psutil.cpu_percent(None)
        console_cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / busy * 100.0
        ratios = sorted(o / x for o, x in runs)
        wall = busy
        done = args.tasks * args.rounds

        # -- 2. failover --------------------------------------------------------------
        engine.create_workflow(flat("failover", n, ["sleep", str(args.sleep)], n))
        engine.start_workflow("failover")
        mark = len(events)
        await drive(engine, lambda: sum(1 for e in events[mark:] if e.type == "TASK_STARTED") >= n, 30)
        await asyncio.sleep(0.3)
        busy = sorted(a.id for a in engine.state.agents.values() if a.current_task and a.status.value == "busy")
        victims = busy[: args.kills]
        tasks = {a: engine.state.agents[a].current_task for a in victims}
        pids = runtime.host_pids()
        mark = len(events)
        killed_at = time.time()
        for a in victims:
            os.kill(pids[a], signal.SIGKILL)

        def restarted() -> bool:
            got = {e.data["task"] for e in events[mark:] if e.type == "TASK_STARTED" and e.data["agent"] not in victims}
            return all(t in got for t in tasks.values())

        await drive(engine, restarted, 30)
        noticed = [e.ts - killed_at for e in events[mark:] if e.type == "AGENT_ERROR" and e.data["agent"] in victims]
        running_again = {}
        for e in events[mark:]:
            if e.type == "TASK_STARTED" and e.data["task"] in tasks.values() and e.data["task"] not in running_again:
                running_again[e.data["task"]] = (e.ts - killed_at, e.data["agent"])
        replacements = [e.data["agent"] for e in events[mark:] if e.type == "AGENT_ALLOCATED"]
    finally:
        await runtime.shutdown()
        await engine.close()

    lat = [v for v, _ in running_again.values()]
    rows = [
        ("agents (real host processes)", f"{n}"),
        ("task", "`true` (fork+exec per task)"),
        (
            "rounds (interleaved)",
            f"{args.rounds}: a workflow of {args.tasks} `true` tasks, start to completed, then xargs",
        ),
        ("opsdeck per round", ", ".join(f"{o:.0f}" for o, _ in runs) + " tasks/s"),
        ("baseline: `xargs -P2 -n1 true` per round", ", ".join(f"{x:.0f}" for _, x in runs) + " spawns/s"),
        ("ratio per round", ", ".join(f"{o / x:.2f}x" for o, x in runs)),
        ("ratio", f"**{statistics.median(ratios):.2f}x** median, {ratios[0]:.2f}x worst (goal >= 0.6x)"),
        ("tasks run in the rounds", f"{done} in {wall:.1f} s"),
        ("console process CPU", f"{console_cpu:.1f} % of one core"),
        ("console CPU at rest (20 idle agents)", f"{idle_cpu:.1f} % of one core"),
        ("machine CPU (all cores)", f"{sys_cpu:.1f} % of {psutil.cpu_count()} cores"),
        ("agents SIGKILLed", f"{len(victims)} ({', '.join(victims)})"),
        ("death noticed after", f"max {max(noticed):.3f} s" if noticed else "n/a"),
        ("replacements spawned", f"{len(replacements)} ({', '.join(replacements)})"),
        ("task running again after", f"mean {statistics.mean(lat):.3f} s, max {max(lat):.3f} s"),
        ("target (< 2 heartbeats)", f"< {2 * HEARTBEAT_S:.1f} s: {'met' if max(lat) < 2 * HEARTBEAT_S else 'MISSED'}"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)} | value")
    print(f"{'-' * w}-|-{'-' * 40}")
    for k, v in rows:
        print(f"{k.ljust(w)} | {v}")
    on = sorted(running_again.items())
    for task, (dt, agent) in on:
        print(f"  {task}: running on {agent} after {dt:.3f} s")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of opsdeck then xargs")
    p.add_argument("--tasks", type=int, default=1000, help="tasks per round (xargs spawns as many)")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--sleep", type=float, default=5.0, help="failover task duration, seconds")
    p.add_argument("--idle", type=float, default=5.0, help="at-rest window, seconds")
    p.add_argument("--db", default=None)
    sys.exit(asyncio.run(main(p.parse_args())))

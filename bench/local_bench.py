"""Local runtime benchmark: real agent processes running real (short) tasks.

1. Throughput, interleaved with the baseline: per round, a workflow of ``--tasks``
   ``true`` tasks on 20 agents, timed as a user waits for it: from its creation to its
   WORKFLOW_COMPLETED committed to the store (agents already up), and ``xargs -P2 -n1
   true`` run as many times, whole (its start to its exit). The console is run as
   ``opsdeck run --headless`` runs it: paced by the host's own loop
   (:meth:`core.host.host.Host.run`, a tick every ``TICK_S`` with its commit and
   maintenance), detectors off as without ``--incidents``, every event's line printed
   (to /dev/null, a write per line as to a terminal; ``--quiet``: none, as ``opsdeck run
   --headless --quiet``). Without ``--headless`` the run has a console (its frames and
   the incident detectors) that this does not count. The order alternates between rounds (opsdeck first, then xargs
   first) so a drift of the machine's load weighs on both. Per round: the ratio of
   rates, its median and worst; the CPU seconds of each side per task (the console
   process, the agent hosts, and the tasks they reaped; xargs with its ``true``
   children); the share of the machine's CPU left idle while each side ran (none
   left: CPU-bound; some: the run waits on latency); and the agents' cycle (wall
   time per task per agent) with its part from assignment to start (the commit that
   must hold the assignment before the start goes out, and the host's launch).
2. Failover: 20 agents each run ``sleep``; 3 agent hosts are SIGKILLed; time until
   each killed agent's task is running again on a replacement agent (heartbeat 1 s;
   target under two heartbeat intervals).

3. Whole runs (``--whole N``): ``opsdeck run --headless`` of a workflow file, process
   start to exit, beside xargs as many times, the order alternating; at each size of
   ``--whole-tasks`` (default ``--tasks``). With two sizes, what a task more costs (the
   medians' difference over the sizes' difference) and the start-up and end that leaves:
   a small size is mostly the start, a large one mostly the tasks.

usage: python bench/local_bench.py [--rounds 3] [--tasks 1000] [--agents 20] [--kills 3] [--db PATH] [--quiet]
       [--whole N] [--whole-tasks 600,5000]
Every figure is measured from this run; nothing is canned.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_whole import HEARTBEAT_S, compile_sources, cpu_rows, file_text, whole_rows, whole_run, xargs_run

from core.config import Config
from core.events import Event
from core.host.host import Host
from core.models import PhaseSpec, TaskSpec, WorkflowSpec
from core.runtimes.local import LocalRuntime
from core.workflow_file import parse_workflow_text


def flat(wf_id: str, n: int, command: list[str], agents: int, cwd: Path) -> WorkflowSpec:
    """``n`` tasks running ``command`` in ``cwd``: a workflow file's tasks all have one (its
    directory when none is given), and the agent host spawns them with it."""
    tasks = [
        TaskSpec(id=f"t{i:05d}", specialization="bench", command=command, cpu=0.01, memory_gb=0.0, cwd=str(cwd))
        for i in range(n)
    ]
    return WorkflowSpec(
        id=wf_id,
        priority=50,
        allocation={"cpu_cores": 4, "memory_gb": 4, "agents": agents},
        phases=[PhaseSpec(name="p", tasks=tasks)],
    )


async def drive(engine, until, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Flush every 20 ms until ``until()`` (a bench without a host's pacing loop)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if until():
            return
        await asyncio.sleep(0.02)
        await engine.flush()
    raise SystemExit(f"benchmark stalled after {timeout}s")


async def wait_for(until, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Until ``until()``, while the host's pacing loop commits."""
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise SystemExit(f"benchmark stalled after {timeout}s")
        await asyncio.sleep(0.02)


def idle_share(t0: Any, t1: Any) -> float:
    """Percent of the machine's CPU time (all cores) idle, waiting on I/O included, between
    two ``psutil.cpu_times()`` (Linux's fields, as the local runtime is; guest time is
    already counted in user time)."""

    def total(t: Any) -> float:
        return float(sum(t)) - t.guest - t.guest_nice

    def idle(t: Any) -> float:
        return float(t.idle) + t.iowait

    span = total(t1) - total(t0)
    return 100.0 * (idle(t1) - idle(t0)) / span if span > 0 else 0.0


def assignment_waits(events: list[Event], committed_at: dict[str, float], wf_id: str) -> tuple[float, float]:
    """Medians over ``wf_id``'s tasks, seconds: from TASK_ASSIGNED (stamped when emitted) to
    its commit (heard by the subscriber: the start goes out after it), and from that commit
    to TASK_STARTED (the start's trip, the host's launch, the report back). The agent runs
    nothing meanwhile."""
    prefix = f"{wf_id}/"
    assigned: dict[str, float] = {}
    commit, launch = [], []
    for e in events:
        task = e.data.get("task")
        if not (isinstance(task, str) and task.startswith(prefix)):
            continue
        if e.type == "TASK_ASSIGNED":
            assigned[task] = e.ts
        elif e.type == "TASK_STARTED" and task in assigned and task in committed_at:
            commit.append(committed_at[task] - assigned.pop(task))
            launch.append(e.ts - committed_at[task])
    nan = float("nan")
    return (statistics.median(commit), statistics.median(launch)) if commit else (nan, nan)


def listed(values: Iterable[float], fmt: str = ".2f") -> str:
    """One figure per round, in the rows' format."""
    return ", ".join(format(v, fmt) for v in values)


def own_cpu() -> float:
    """CPU seconds of this (the console's) process, all its threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hosts_cpu(pids: dict[str, int]) -> tuple[float, float]:
    """CPU seconds of the agent host processes themselves, and of the task processes
    they reaped."""
    own = tasks = 0.0
    for pid in pids.values():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        own += t.user + t.system
        tasks += t.children_user + t.children_system
    return own, tasks


class Round:
    """One side of one round: wall seconds, CPU seconds (opsdeck's: of the console, of
    the agent hosts and of their tasks), the machine's idle share meanwhile, and
    (opsdeck's) the median seconds from assignment to its commit and from there to start."""

    def __init__(
        self,
        wall: float,
        cpu: float,
        idle: float,
        console: float = 0.0,
        hosts: float = 0.0,
        waits: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.wall, self.cpu, self.idle, self.console, self.hosts = wall, cpu, idle, console, hosts
        self.commit, self.launch = waits


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
    committed_at: dict[str, float] = {}
    """When each TASK_ASSIGNED was heard, i.e. committed (its start goes out right after)."""
    completed: dict[str, asyncio.Event] = {}
    # `opsdeck run --headless` prints every event's line (LinePrinter: ev.line(), one write
    # per line as to a terminal); --quiet prints none. The terminal's drawing is not counted.
    lines = None if args.quiet else open(os.devnull, "w", buffering=1)  # noqa: SIM115 - closed below

    def hear(e: Event) -> None:  # subscribers hear of an event once it is committed
        if lines is not None:
            lines.write(e.line() + "\n")
        events.append(e)
        if e.type == "TASK_ASSIGNED":
            committed_at[e.data["task"]] = time.time()
        if e.type == "WORKFLOW_COMPLETED" and e.data["workflow_id"] in completed:
            completed[e.data["workflow_id"]].set()

    host = await Host.open_local(db, wf, wf.specs(Path.cwd()), config, subscriber=hear)
    host.manager.detectors.clear()  # as `opsdeck run --headless` without --incidents
    engine, runtime = host.engine, host.runtime
    assert isinstance(runtime, LocalRuntime)
    me = psutil.Process()
    stop = asyncio.Event()
    pacing = asyncio.get_running_loop().create_task(host.run(stop))
    try:
        await wait_for(lambda: engine.state.status_of("warmup").value == "completed", 30)
        await wait_for(lambda: all(h.writer is not None for h in runtime.hosts.values()), 30)

        # -- 0. at rest: 20 idle agents, heartbeats and psutil sampling only -------------
        idle0 = me.cpu_times()
        r0 = time.monotonic()
        while time.monotonic() - r0 < args.idle:
            await asyncio.sleep(0.1)
        idle1 = me.cpu_times()
        idle_cpu = (idle1.user - idle0.user + idle1.system - idle0.system) / (time.monotonic() - r0) * 100.0

        # -- 1. throughput: whole runs, interleaved with the baseline, order alternating --
        async def opsdeck_round(wid: str) -> Round:
            pids = runtime.host_pids()
            completed[wid] = asyncio.Event()
            spec = flat(wid, args.tasks, ["true"], n, db.parent.resolve())
            c0, (h0, k0), m0 = own_cpu(), hosts_cpu(pids), psutil.cpu_times()
            t0 = time.monotonic()
            async with host.lock:  # what a command does: under the host's lock
                engine.create_workflow(spec)
                engine.start_workflow(wid)
            await asyncio.wait_for(completed[wid].wait(), 600)
            dt = time.monotonic() - t0
            c1, (h1, k1), m1 = own_cpu(), hosts_cpu(pids), psutil.cpu_times()
            waits = assignment_waits(events, committed_at, wid)
            return Round(dt, c1 - c0 + h1 - h0 + k1 - k0, idle_share(m0, m1), c1 - c0, h1 - h0, waits)

        async def xargs_round() -> Round:
            m0 = psutil.cpu_times()
            dt, cpu = await asyncio.to_thread(xargs_run, args.tasks)  # the loop keeps hearing heartbeats
            return Round(dt, cpu, idle_share(m0, psutil.cpu_times()))

        runs: list[tuple[Round, Round]] = []  # (opsdeck, xargs) per round
        load0 = os.getloadavg()
        psutil.cpu_percent(None)
        for r in range(args.rounds):
            if r % 2 == 0:
                o = await opsdeck_round(f"throughput{r}")
                x = await xargs_round()
            else:
                x = await xargs_round()
                o = await opsdeck_round(f"throughput{r}")
            runs.append((o, x))
        load1 = os.getloadavg()
        sys_cpu = psutil.cpu_percent(None)
        rate = [(args.tasks / o.wall, args.tasks / x.wall) for o, x in runs]
        ratios = sorted(ro / rx for ro, rx in rate)
        cpu_ratios = sorted(x.cpu / o.cpu for o, x in runs)
        wall = sum(o.wall for o, _ in runs)
        done = args.tasks * args.rounds
        whole: dict[int, list[tuple[float, float]]] = {size: [] for size in args.whole_tasks}
        """Per size: (opsdeck run, xargs) walls, the order alternating."""
        whole_cpu: dict[int, list[tuple[float, float]]] = {size: [] for size in args.whole_tasks}
        """The same runs' CPU seconds (opsdeck's whole tree, xargs with its children)."""
        compiled = compile_sources() if args.whole else 0
        for r in range(args.whole):
            for size in args.whole_tasks:
                spot = Path(tempfile.mkdtemp(prefix=f"whole{r}-{size}-", dir=db.parent))  # a fresh database each run
                if r % 2 == 0:
                    ow, oc = await asyncio.to_thread(whole_run, n, size, spot)
                    xw, xc = await asyncio.to_thread(xargs_run, size)
                else:
                    xw, xc = await asyncio.to_thread(xargs_run, size)
                    ow, oc = await asyncio.to_thread(whole_run, n, size, spot)
                whole[size].append((ow, xw))
                whole_cpu[size].append((oc, xc))

        # -- 2. failover --------------------------------------------------------------
        mark = len(events)
        async with host.lock:
            engine.create_workflow(flat("failover", n, ["sleep", str(args.sleep)], n, db.parent.resolve()))
            engine.start_workflow("failover")
        await wait_for(lambda: sum(1 for e in events[mark:] if e.type == "TASK_STARTED") >= n, 30)
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

        await wait_for(restarted, 30)
        noticed = [e.ts - killed_at for e in events[mark:] if e.type == "AGENT_ERROR" and e.data["agent"] in victims]
        running_again = {}
        for e in events[mark:]:
            if e.type == "TASK_STARTED" and e.data["task"] in tasks.values() and e.data["task"] not in running_again:
                running_again[e.data["task"]] = (e.ts - killed_at, e.data["agent"])
        replacements = [e.data["agent"] for e in events[mark:] if e.type == "AGENT_ALLOCATED"]
    finally:
        stop.set()
        await pacing
        await host.close()
        if lines is not None:
            lines.close()

    lat = [v for v, _ in running_again.values()]
    per_ms = args.tasks / 1e3  # seconds over this: milliseconds per task
    rows = [
        ("agents (real host processes)", f"{n}"),
        ("task", "`true` (fork+exec per task)"),
        (
            "console run as",
            "opsdeck run --headless" + (" --quiet (no event lines)" if args.quiet else " (event lines printed)"),
        ),
        (
            "rounds (interleaved)",
            f"{args.rounds}: a workflow of {args.tasks} `true` tasks, creation to completion committed; xargs as many",
        ),
        ("order", "opsdeck first in rounds 1, 3, ...; xargs first in rounds 2, 4, ..."),
        ("opsdeck per round", ", ".join(f"{ro:.0f}" for ro, _ in rate) + " tasks/s (creation to completion committed)"),
        ("baseline: `xargs -P2 -n1 true` per round", ", ".join(f"{rx:.0f}" for _, rx in rate) + " spawns/s"),
        ("ratio per round", ", ".join(f"{ro / rx:.2f}x" for ro, rx in rate)),
        ("ratio", f"**{statistics.median(ratios):.2f}x** median, {ratios[0]:.2f}x worst (goal >= 0.6x)"),
        (
            "opsdeck CPU per task",
            f"{listed(o.cpu / per_ms for o, _ in runs)} ms (console {listed(o.console / per_ms for o, _ in runs)} ms; "
            f"agent hosts {listed(o.hosts / per_ms for o, _ in runs)} ms; the rest their tasks)",
        ),
        ("xargs CPU per spawn", f"{listed(x.cpu / per_ms for _, x in runs)} ms"),
        (
            "machine CPU idle while each side ran",
            f"opsdeck {listed((o.idle for o, _ in runs), '.0f')} %; "
            f"xargs {listed((x.idle for _, x in runs), '.0f')} % (of all cores)",
        ),
        (
            "agent cycle (wall per task per agent)",
            f"{listed((o.wall * n / per_ms for o, _ in runs), '.1f')} ms; medians: assignment to its commit "
            f"{listed((o.commit * 1e3 for o, _ in runs), '.1f')} ms, then to the start's report "
            f"{listed((o.launch * 1e3 for o, _ in runs), '.1f')} ms",
        ),
        (
            "CPU ratio (xargs CPU / opsdeck CPU)",
            f"**{statistics.median(cpu_ratios):.2f}x** median, {cpu_ratios[0]:.2f}x worst",
        ),
        ("tasks run in the rounds", f"{done} in {wall:.1f} s"),
        *whole_rows(whole),
        *cpu_rows(whole_cpu),
        (
            "bytecode before the whole runs",
            f"{compiled} of opsdeck's modules compiled (as an installed package has them)",
        ),
        ("load average (1 min) before / after the rounds", f"{load0[0]:.2f} / {load1[0]:.2f}"),
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
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of opsdeck and xargs (order alternating)")
    p.add_argument("--tasks", type=int, default=1000, help="tasks per round (xargs spawns as many)")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--sleep", type=float, default=5.0, help="failover task duration, seconds")
    p.add_argument("--idle", type=float, default=5.0, help="at-rest window, seconds")
    p.add_argument("--db", default=None)
    p.add_argument("--whole", type=int, default=1, help="runs of a whole `opsdeck run --headless`, each beside xargs")
    p.add_argument(
        "--whole-tasks",
        default="",
        help="comma-separated task counts of the whole runs, each size run --whole times (default: --tasks)",
    )
    p.add_argument("--quiet", action="store_true", help="print no event lines (as `opsdeck run --headless --quiet`)")
    a = p.parse_args()
    try:
        a.whole_tasks = [int(x) for x in a.whole_tasks.split(",") if x.strip()] or [a.tasks]
    except ValueError:
        p.error(f"--whole-tasks: comma-separated whole numbers, not {a.whole_tasks!r}")
    if not all(0 < size <= 100_000 for size in a.whole_tasks) or len(set(a.whole_tasks)) != len(a.whole_tasks):
        p.error(f"--whole-tasks: distinct sizes of 1 to 100,000 tasks, not {a.whole_tasks}")
    sys.exit(asyncio.run(main(a)))

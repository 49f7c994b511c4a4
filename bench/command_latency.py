"""Benchmark: one command's latency against the size of the live state, in process and over the socket.

In process: memory engines hold one pending workflow of 0 / 10,000 / 100,000 live
tasks, created through the engine (``WORKFLOW_CREATED`` events, folded like any
other; the 0 case has no workflow). In one interleaved run (engine after engine,
round after round, so all see the same machine load) each answers a read-only
command (``/resource-manager status``) and a mutating one (``/resource-manager
scale`` of a pool, alternating sizes) through ``run_command``, the one command path.

Over the socket: hosts on SQLite databases (the simulated runtime, clock paused)
hold 0 and 100,000 live tasks the same way and serve their unix sockets; a client in
another process (one keep-alive connection per host, as an attached console keeps)
sends, round after round and host after host, ``GET /v1/health`` (the baseline: a
request the host answers without the command path), the read-only command and the
mutating one; each command is answered after its events are committed.

Prints p50 of each and the ratios: against the 0-task engine (goal: <= 1.5x at 100k)
and, over the socket, against health (goal: read-only <= 2x health).

A unit of work journals what its folds overwrite (core/journal.py) and takes back
only that when it fails: no copy of the state, whatever its size.

    python bench/command_latency.py [--sizes 0,10000,100000] [--rounds 30] [--mutating-rounds 30]
                                    [--socket-sizes 0,100000] [--socket-rounds 200] [--only inproc|socket]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.commands import run_command  # noqa: E402
from core.config import Config  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.session import memory_sim  # noqa: E402

READ_ONLY = "/resource-manager status"
POOL = "bench"


def mutating(r: int) -> str:
    return f'/resource-manager scale \'{{"pool": "{POOL}", "size": {1 + r % 2}}}\''


def populate(eng: Engine, tasks: int) -> None:
    """One pool and, unless ``tasks`` is 0, one pending workflow of that many tasks."""
    eng.create_pool(POOL, ["x"], 0, 4)
    if tasks:
        spec: list[dict[str, Any]] = [
            {"id": f"t{i}", "specialization": "x", "duration_s": 60, "cpu": 0, "memory_gb": 0} for i in range(tasks)
        ]
        eng.create_workflow(
            {
                "id": "big",
                "allocation": {"cpu_cores": 1, "memory_gb": 1, "agents": 2},
                "phases": [{"name": "all", "tasks": spec}],
            }
        )


def build(tasks: int) -> Engine:
    eng = memory_sim(demo=False)
    populate(eng, tasks)
    return eng


async def timed(eng: Engine, text: str) -> float:
    t0 = time.perf_counter()
    resp = await run_command(eng, text, actor="bench")
    dt = time.perf_counter() - t0
    assert resp["status"] == "success", (text, resp)
    return dt


def row(label: str, xs: list[float], base: list[float] | None, what: str) -> str:
    p = statistics.median(xs)
    ratio = f"{p / statistics.median(base):6.2f}x {what}" if base else ""
    return f"  {label:<34} p50 {p * 1e3:8.3f} ms  {ratio}"


async def inproc(sizes: list[int], rounds: int, mutating_rounds: int) -> None:
    engines = {}
    for n in sizes:
        t0 = time.perf_counter()
        engines[n] = build(n)
        print(f"built {n:,} live tasks through events in {time.perf_counter() - t0:.2f} s", flush=True)
    ro: dict[int, list[float]] = {n: [] for n in sizes}
    mu: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:  # warm-up, not timed
        await timed(engines[n], READ_ONLY)
    for r in range(max(rounds, mutating_rounds)):
        for n in sizes:
            if r < rounds:
                ro[n].append(await timed(engines[n], READ_ONLY))
            if r < mutating_rounds:
                mu[n].append(await timed(engines[n], mutating(r)))
    print(f"\nin process (run_command), {rounds} read-only and {mutating_rounds} mutating per engine, interleaved:")
    for n in sizes:
        print(row(f"{n:>7,} live tasks, read-only", ro[n], ro[sizes[0]], f"of {sizes[0]:,}"))
        print(row(f"{n:>7,} live tasks, mutating", mu[n], mu[sizes[0]], f"of {sizes[0]:,}"))


async def client(socks: list[str], rounds: int) -> None:
    """The client process: per round, per host, health then read-only then mutating."""
    from core.host.client import HostClient

    out: dict[str, dict[str, list[float]]] = {s: {"health": [], "ro": [], "mu": []} for s in socks}
    clients = [HostClient(socket_path=s) for s in socks]
    try:
        for c in clients:
            for _ in range(10):  # warm-up
                await c.health()
                await c.send(READ_ONLY, actor="bench-warmup")
        for r in range(rounds):
            for s, c in zip(socks, clients, strict=True):
                t0 = time.perf_counter()
                await c.health()
                t1 = time.perf_counter()
                resp = await c.send(READ_ONLY, actor="bench")
                t2 = time.perf_counter()
                assert resp["status"] == "success", resp
                resp = await c.send(mutating(r), actor="bench")
                t3 = time.perf_counter()
                assert resp["status"] == "success", resp
                out[s]["health"].append(t1 - t0)
                out[s]["ro"].append(t2 - t1)
                out[s]["mu"].append(t3 - t2)
    finally:
        for c in clients:
            await c.close()
    print(json.dumps(out))


async def socket(sizes: list[int], rounds: int) -> None:
    from core.host.host import Host

    with tempfile.TemporaryDirectory(prefix="opsdeck-latency-") as tmp:
        hosts: dict[int, Host] = {}
        try:
            for n in sizes:
                t0 = time.perf_counter()
                host = await Host.open_sim(Path(tmp) / f"h{n}.db", Config(), create=True)
                populate(host.engine, n)
                await host.engine.flush()
                await host.serve()
                hosts[n] = host
                print(f"host with {n:,} live tasks ready in {time.perf_counter() - t0:.2f} s", flush=True)
            socks = [str(hosts[n].socket_path) for n in sizes]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--client", str(rounds), *socks, stdout=asyncio.subprocess.PIPE
            )
            raw, _ = await proc.communicate()
            assert proc.returncode == 0, "the client failed"
            res = json.loads(raw)
        finally:
            for h in hosts.values():
                await h.close()
    print(f"\nover the unix socket (HTTP, one keep-alive connection per host), {rounds} rounds, interleaved:")
    base = res[socks[0]]
    for n, s in zip(sizes, socks, strict=True):
        r = res[s]
        print(row(f"{n:>7,} live tasks, GET /v1/health", r["health"], base["health"], f"of {sizes[0]:,}"))
        print(row(f"{n:>7,} live tasks, read-only", r["ro"], r["health"], "of health (goal <= 2x)"))
        print(row(f"{n:>7,} live tasks, read-only", r["ro"], base["ro"], f"of {sizes[0]:,} (goal <= 1.5x)"))
        print(row(f"{n:>7,} live tasks, mutating", r["mu"], base["mu"], f"of {sizes[0]:,} (goal <= 1.5x)"))


async def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        await client(sys.argv[3:], int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,10000,100000")
    ap.add_argument("--rounds", type=int, default=30, help="read-only commands per engine")
    ap.add_argument("--mutating-rounds", type=int, default=30, help="mutating commands per engine")
    ap.add_argument("--socket-sizes", default="0,100000")
    ap.add_argument("--socket-rounds", type=int, default=200)
    ap.add_argument("--only", choices=["inproc", "socket"])
    args = ap.parse_args()
    if args.only != "socket":
        await inproc([int(s) for s in args.sizes.split(",")], args.rounds, args.mutating_rounds)
    if args.only != "inproc":
        await socket([int(s) for s in args.socket_sizes.split(",")], args.socket_rounds)


if __name__ == "__main__":
    asyncio.run(main())

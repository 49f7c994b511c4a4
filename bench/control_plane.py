"""Benchmark: the control plane against the in-process command path, in the same run.

1. Round trip. A host (the simulated demo fleet, its clock running at x30) serves
   its unix socket. 1,000 read-only commands (``/resource-manager status``) are sent
   by a client in another process (one keep-alive HTTP connection, as an attached
   console or script keeps), each answered after its COMMAND_EXECUTED record is
   committed. Baseline: the same 1,000 commands through ``Host.execute`` inside the
   host process (run_command + the same commit). p50/p99 of both and their ratio.
   Goal: p99 through the socket < 5 ms.
2. Stream. The host runs its clock as fast as it goes (the ingest: runtime facts
   folded, hashed and committed); a client in another process follows
   ``GET /v1/events``. Events/s committed vs events/s delivered over the same
   window, and how long after the last commit the client had the last event.

    python bench/control_plane.py [--n 1000] [--ingest-s 5]
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

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.config import Config  # noqa: E402
from core.host.client import HostClient  # noqa: E402
from core.host.host import Host  # noqa: E402

COMMAND = "/resource-manager status"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# -- the client side (a separate process) ------------------------------------------
async def client_round_trips(sock: str, n: int) -> None:
    async with HostClient(socket_path=sock) as c:
        for _ in range(20):
            await c.send(COMMAND, actor="bench-warmup")
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            resp = await c.send(COMMAND, actor="bench")
            lat.append(time.perf_counter() - t0)
            assert resp["status"] == "success", resp
    print(json.dumps(lat))


async def client_follow(sock: str, since: int) -> None:
    """Follow the stream until it has delivered the seq the host says it ended at."""
    n = 0
    first: float | None = None
    last_seq = since
    async with HostClient(socket_path=sock) as c:

        async def follow() -> None:
            nonlocal n, first, last_seq
            async for ev in c.events(since):
                n += 1
                if first is None:
                    first = time.time()
                last_seq = ev.seq

        task = asyncio.get_running_loop().create_task(follow())
        print("ready", flush=True)
        target = int(await asyncio.to_thread(sys.stdin.readline))
        while last_seq < target:
            await asyncio.sleep(0.002)
        done = time.time()
        task.cancel()
    print(json.dumps({"n": n, "first": first, "last": done}), flush=True)


# -- the host side --------------------------------------------------------------------
async def bench(n: int, ingest_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="opsdeck-cp-bench-") as tmp:
        db = Path(tmp) / "cp.db"
        host = await Host.open_sim(db, Config(), demo=True, create=True, speed=30.0, recurring=True)
        await host.serve()
        stop = asyncio.Event()
        pacing = asyncio.get_running_loop().create_task(host.run(stop))
        try:
            for _ in range(20):
                await host.execute(COMMAND, actor="bench-warmup")
            lat_in = []
            for _ in range(n):
                t0 = time.perf_counter()
                resp = await host.execute(COMMAND, actor="bench")
                lat_in.append(time.perf_counter() - t0)
                assert resp["status"] == "success"
            proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--client-rtt", str(host.socket_path),
                                                        str(n), stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            lat_sock = json.loads(out)
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"round trip, {n} x {COMMAND!r} (clock running x30), ms:")
            print(f"  in-process Host.execute  p50 {pct(lat_in, 50) * 1e3:6.2f}  p99 {pct(lat_in, 99) * 1e3:6.2f}")
            print(f"  unix socket (HTTP)       p50 {pct(lat_sock, 50) * 1e3:6.2f}  p99 {pct(lat_sock, 99) * 1e3:6.2f}")
            print(f"  ratio socket/in-process  p50 {pct(lat_sock, 50) / pct(lat_in, 50):5.2f}x  "
                  f"p99 {pct(lat_sock, 99) / pct(lat_in, 99):5.2f}x   (goal: socket p99 < 5 ms: "
                  f"{'met' if pct(lat_sock, 99) < 0.005 else 'NOT met'})")
            print(f"  mean socket {statistics.mean(lat_sock) * 1e3:.2f} ms, in-process {statistics.mean(lat_in) * 1e3:.2f} ms")
        finally:
            stop.set()
            await pacing

        async def fleet() -> None:
            t0 = time.time()
            while time.time() - t0 < ingest_s:
                await host.advance(60.0)

        async def burst() -> None:
            """Observed events at the engine's full rate (the event_pipeline bench's rows)."""
            eng = host.engine
            t0 = time.time()
            i = 0
            while time.time() - t0 < ingest_s:
                async with host.lock:
                    for _ in range(1000):
                        eng.emit(BURST_TYPES[i & 3], "performance", "bench", {"agent": f"agent_{i % 20:03d}", "value": i * 0.5})
                        i += 1
                    await eng.flush()
                host._wake()
                await asyncio.sleep(0)

        await stream(host, fleet, ingest_s, "the demo fleet's simulated clock as fast as it goes")
        await stream(host, burst, ingest_s, "observed events emitted at the engine's full rate, committed per 1,000")
        await host.close()


BURST_TYPES = ["TASK_PROGRESS_OBSERVED", "RESOURCE_SAMPLE", "AGENT_PERFORMANCE_ALERT", "SYSTEM_THRESHOLD"]


async def stream(host: Host, ingest, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Events/s committed by ``ingest()`` vs delivered to a follower in another process."""
    since = host.engine.state.seq
    follower = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client-follow", str(host.socket_path), str(since),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert follower.stdout is not None and follower.stdin is not None
    assert (await follower.stdout.readline()).strip() == b"ready"
    t0 = time.time()
    await ingest()
    t1 = time.time()
    end = host.engine.state.seq
    follower.stdin.write(f"{end}\n".encode())
    await follower.stdin.drain()
    got = json.loads((await follower.stdout.readline()) or b"{}")
    await follower.wait()
    ingested = end - since
    ingest_rate = ingested / (t1 - t0)
    delivered_rate = got["n"] / (got["last"] - t0)
    print(f"event stream while the host ingests ({t1 - t0:.1f} s; {what}):")
    print(f"  ingest (committed)  {ingested:>9,} events {ingest_rate:>9,.0f} events/s")
    print(f"  delivered over SSE  {got['n']:>9,} events {delivered_rate:>9,.0f} events/s "
          f"({delivered_rate / ingest_rate:.2f}x); the last one {max(0.0, got['last'] - t1) * 1e3:.0f} ms after the last commit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--ingest-s", type=float, default=5.0)
    ap.add_argument("--client-rtt", nargs=2, metavar=("SOCKET", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--client-follow", nargs=2, metavar=("SOCKET", "SINCE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.client_rtt:
        asyncio.run(client_round_trips(a.client_rtt[0], int(a.client_rtt[1])))
    elif a.client_follow:
        asyncio.run(client_follow(a.client_follow[0], int(a.client_follow[1])))
    else:
        asyncio.run(bench(a.n, a.ingest_s))


if __name__ == "__main__":
    main()

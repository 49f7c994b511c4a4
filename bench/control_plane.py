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
3. Console launch. A console attached to a live host (``opsdeck serve`` holds the
   database; the console folds a replica and follows the host's stream) against an
   embedded one (the console hosts the same database in-process), each a fresh
   process, from launch to the first frame and to the first frame with its panes
   filled (workflows and agents listed, the event log's visible rows read); medians
   of ``--console-runs`` launches, interleaved so both see the same load. The
   database is the console benchmark's (``bench/console_bench.py: build_big``): a
   real demo prefix, then hash-chained observation events.

    python bench/control_plane.py [--n 1000] [--ingest-s 5] [--console-events 200000] [--console-runs 3]
                                  [--only rtt-stream|console]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
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
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


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
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--client-rtt", str(host.socket_path), str(n), stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            lat_sock = json.loads(out)
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"round trip, {n} x {COMMAND!r} (clock running x30), ms:")
            print(f"  in-process Host.execute  p50 {pct(lat_in, 50) * 1e3:6.2f}  p99 {pct(lat_in, 99) * 1e3:6.2f}")
            print(f"  unix socket (HTTP)       p50 {pct(lat_sock, 50) * 1e3:6.2f}  p99 {pct(lat_sock, 99) * 1e3:6.2f}")
            print(
                f"  ratio socket/in-process  p50 {pct(lat_sock, 50) / pct(lat_in, 50):5.2f}x  "
                f"p99 {pct(lat_sock, 99) / pct(lat_in, 99):5.2f}x   (goal: socket p99 < 5 ms: "
                f"{'met' if pct(lat_sock, 99) < 0.005 else 'NOT met'})"
            )
            print(
                f"  mean socket {statistics.mean(lat_sock) * 1e3:.2f} ms, in-process {statistics.mean(lat_in) * 1e3:.2f} ms"
            )
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
                        eng.emit(
                            BURST_TYPES[i & 3],
                            "performance",
                            "bench",
                            {"agent": f"agent_{i % 20:03d}", "value": i * 0.5},
                        )
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
        sys.executable,
        __file__,
        "--client-follow",
        str(host.socket_path),
        str(since),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
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
    print(
        f"  delivered over SSE  {got['n']:>9,} events {delivered_rate:>9,.0f} events/s "
        f"({delivered_rate / ingest_rate:.2f}x); the last one {max(0.0, got['last'] - t1) * 1e3:.0f} ms after the last commit"
    )


CONSOLE_SIZE = (160, 48)


# -- 3. console launch: attached vs embedded -------------------------------------------
def console_child(db: str, t_launch: float, mode: str) -> None:
    from tui.app import OpsdeckApp

    out: dict[str, object] = {}

    async def go() -> None:
        app = OpsdeckApp(db=Path(db), config=Config(), speed=0, attach=mode == "attached", create=False)
        async with app.run_test(size=CONSOLE_SIZE) as pilot:
            while app.first_frame_wall is None:
                await asyncio.sleep(0.001)
            out["first_frame_s"] = app.first_frame_wall - t_launch
            link = await app.link_opened(timeout=600)

            def filled() -> bool:
                wfs = [o.id for o in app.workflows_pane.options if o.id and o.id.startswith("wf:")]
                agents = [o.id for o in app.pools_pane.options if o.id and o.id.startswith("agent:")]
                return bool(wfs and agents) and app.log_pane.head > 0 and app.log_pane.visible_ready()

            while not filled():
                await pilot.pause(0.002)
            out["panes_filled_s"] = time.time() - t_launch
            out["kind"] = link.kind
            out["describe"] = link.describe()
            out["seq"] = link.state.seq
            await app.shutdown()

    asyncio.run(go())
    print("RESULT " + json.dumps(out), flush=True)


def launch_console(db: Path, mode: str) -> dict[str, float]:
    t = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--console-child", str(db), "--mode", mode, "--t0", repr(t)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            if res["kind"] != mode:
                raise RuntimeError(f"asked for an {mode} console, got {res['kind']} ({res['describe']})")
            return res
    raise RuntimeError(f"console child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


class Served:
    """``opsdeck serve --db D`` with its clock paused: the database holds still."""

    def __init__(self, db: Path) -> None:
        from core.host.lease import current_holder

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsdeck", "serve", "--db", str(db), "--speed", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        deadline = time.monotonic() + 600
        while True:
            h = current_holder(db)
            if h is not None and h.pid == self.proc.pid and h.socket:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"opsdeck serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
                )
            time.sleep(0.05)
        asyncio.run(self._pause(db))

    @staticmethod
    async def _pause(db: Path) -> None:
        client = HostClient.for_db(db)
        assert client is not None
        try:
            res = await client.send("/host clock pause", "bench")
            assert res["status"] == "success", res
        finally:
            await client.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)


def bench_console(db: Path, runs: int) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, float]]] = {"embedded": [], "attached": []}
    for _ in range(runs):
        results["embedded"].append(launch_console(db, "embedded"))
        host = Served(db)
        try:
            results["attached"].append(launch_console(db, "attached"))
        finally:
            host.stop()
    keys = ("first_frame_s", "panes_filled_s", "seq")
    return {k: {m: statistics.median(r[m] for r in v) for m in keys} for k, v in results.items()}


def print_console(med: dict[str, dict[str, float]], runs: int) -> None:
    e, a = med["embedded"], med["attached"]
    print(
        f"\nconsole launch on the same database ({int(e['seq']):,} events; {runs} launches each, medians; "
        f"terminal {CONSOLE_SIZE[0]}x{CONSOLE_SIZE[1]})"
    )
    print(f"{'measure':<44}{'embedded':>11}{'attached':>11}{'ratio':>9}")
    for label, key in (
        ("launch -> first frame (s)", "first_frame_s"),
        ("launch -> first frame, panes filled (s)", "panes_filled_s"),
    ):
        print(f"{label:<44}{e[key]:>11.3f}{a[key]:>11.3f}{a[key] / e[key]:>8.2f}x")


def console_section(events: int, runs: int) -> None:
    from bench.console_bench import build_big

    with tempfile.TemporaryDirectory(prefix="opsdeck-cp-console-") as tmp:
        db = Path(tmp) / f"fleet-{events}.db"
        t = time.perf_counter()
        build_big(db, events)
        print(
            f"\nbuilt {events:,} events in {time.perf_counter() - t:.1f}s; {db.stat().st_size / 1e6:.0f} MB; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print_console(bench_console(db, runs), runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--ingest-s", type=float, default=5.0)
    ap.add_argument("--client-rtt", nargs=2, metavar=("SOCKET", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--client-follow", nargs=2, metavar=("SOCKET", "SINCE"), help=argparse.SUPPRESS)
    ap.add_argument("--console-events", type=int, default=200_000, help="events in the console-launch database")
    ap.add_argument("--console-runs", type=int, default=3, help="launches per console kind (medians)")
    ap.add_argument("--only", choices=("rtt-stream", "console"), help="run one part")
    ap.add_argument("--console-child", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("embedded", "attached"), help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.console_child:
        console_child(a.console_child, a.t0, a.mode)
    elif a.client_rtt:
        asyncio.run(client_round_trips(a.client_rtt[0], int(a.client_rtt[1])))
    elif a.client_follow:
        asyncio.run(client_follow(a.client_follow[0], int(a.client_follow[1])))
    else:
        if a.only != "console":
            asyncio.run(bench(a.n, a.ingest_s))
        if a.only != "rtt-stream":
            console_section(a.console_events, a.console_runs)


if __name__ == "__main__":
    main()

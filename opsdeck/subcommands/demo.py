"""``opsdeck demo``: the built-in simulated fleet, in the console or headless."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..paths import live_demo_db, new_demo_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the built-in simulated demo fleet",
        description="Run the built-in demo: three agent pools and six workflows on the simulated runtime. "
        "Without --db the console attaches to a live demo if one runs, else a new demo database is made in "
        "the data directory (demos/demo-<date>-<time>.db; none is ever deleted); headless always makes a new one. "
        "With --db an existing database is resumed where it stopped (or attached to, when a host runs it).",
    )
    p.add_argument("--db", metavar="PATH", help="database file (resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.add_argument("--headless", action="store_true", help="no console: print event lines as they happen")
    p.add_argument("--json", action="store_true", help="headless: one JSON object per event, then one summary object")
    p.add_argument(
        "--for",
        dest="duration",
        type=float,
        metavar="SECONDS",
        default=3600.0,
        help="simulated seconds to run when headless (default 3600)",
    )
    p.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second in the console")
    p.add_argument("--readonly", action="store_true", help="watch only: refuse every state change")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also serve the control endpoint on TCP when this process hosts (commands need the token in <db>.token)",
    )
    p.set_defaults(func=run)


def _db_path(args: argparse.Namespace) -> Path | None:
    """``--db``, else the live demo (console only), else a new database named by time
    (None: a read-only console with no demo to watch)."""
    if args.db:
        return Path(args.db)
    if not args.headless:
        live = live_demo_db()
        if live is not None:
            print(f"# opsdeck demo: attaching to the live demo {live}", file=sys.stderr)
            return live
        if args.readonly:
            print(
                "opsdeck demo --readonly: no demo is running to watch (start one with opsdeck demo, "
                "or name a database with --db)",
                file=sys.stderr,
            )
            return None
    path = new_demo_db()
    print(f"# opsdeck demo: a new demo database {path}", file=sys.stderr)
    return path


def run(args: argparse.Namespace) -> int:
    from core.config import load_config

    config = load_config(args.config)
    db = _db_path(args)
    if db is None:
        return 2
    if args.headless:
        return asyncio.run(_headless(db, config, args.seed, args.duration, args.json, args.listen))
    from ..console import run_console

    return run_console(
        db=db, config=config, demo=True, seed=args.seed, speed=args.speed, readonly=args.readonly, listen=args.listen
    )


async def _headless(
    db: Path,
    config,
    seed: int,
    duration: float,
    as_json: bool = False,
    listen: str | None = None,
) -> int:
    """A host that runs the demo's clock ``duration`` simulated seconds as fast as it
    goes, printing event lines, while serving its endpoint (clients may attach)."""
    from core.demo import build_demo
    from core.host.host import Host
    from core.session import open_sim

    from ..output import LinePrinter, json_line  # the event types: headless only
    from .hosting import announce, stop_on_signals

    printer = LinePrinter(as_json)

    async def opener():
        engine = await open_sim(db, config, seed=seed, demo=False)
        engine.subscribe(printer)  # before the fleet is built: its events are printed too
        if engine.state.seq == 0:
            engine.set_setting("sim_seed", seed)
            build_demo(engine, seed=seed)
        return engine, engine.runtime

    stop = stop_on_signals()
    host = await Host.open_with(db, opener, kind="sim", create=True)
    try:
        await host.serve(listen)
        announce(host, "demo")
        end = host.engine.clock.now() + duration
        while host.engine.clock.now() < end and not printer.closed and not stop.is_set():
            await host.advance(min(60.0, end - host.engine.clock.now()))
    finally:
        await host.close()
        if as_json:
            s = host.engine.state
            counts: dict[str, int] = {}
            for w in s.workflows.values():
                counts[w.status.value] = counts.get(w.status.value, 0) + 1
            printer.write(
                json_line(
                    {
                        "summary": "demo",
                        "db": str(db),
                        "clock": round(host.engine.clock.now(), 3),
                        "seq": host.engine.committed_seq,  # the log's head: held events are not in it
                        "workflows": counts,
                        "interrupted": stop.is_set(),
                    }
                )
            )
        if not printer.closed:
            sys.stdout.flush()
    return 130 if stop.is_set() else 0

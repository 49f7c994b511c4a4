"""``opsdeck demo``: the built-in simulated fleet, in the console or headless."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from core.config import load_config
from core.session import open_sim

from ..paths import demo_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the built-in simulated demo fleet",
        description="Run the built-in demo: three agent pools and six workflows on the simulated runtime. "
        "Without --db a fresh demo database is made in the data directory; with --db an existing "
        "database is resumed where it stopped.",
    )
    p.add_argument("--db", metavar="PATH", help="database file (resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.add_argument("--headless", action="store_true", help="no console: print event lines as they happen")
    p.add_argument("--for", dest="duration", type=float, metavar="SECONDS", default=3600.0,
                   help="simulated seconds to run when headless (default 3600)")
    p.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second in the console")
    p.add_argument("--readonly", action="store_true", help="watch only: refuse every state change")
    p.set_defaults(func=run)


def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    path = demo_db()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    db = _db_path(args)
    if args.headless:
        return asyncio.run(_headless(db, config, args.seed, args.duration))
    from ..console import run_console

    return run_console(db=db, config=config, demo=True, seed=args.seed, speed=args.speed, readonly=args.readonly)


class LinePrinter:
    """Prints event lines as they happen; stops quietly when the reader goes away."""

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, ev) -> None:  # type: ignore[no-untyped-def]
        if self.closed:
            return
        try:
            sys.stdout.write(ev.line() + "\n")
        except BrokenPipeError:
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


async def _headless(db: Path, config, seed: int, duration: float) -> int:  # type: ignore[no-untyped-def]
    printer = LinePrinter()
    engine = await open_sim(db, config, seed=seed, demo=False)
    engine.subscribe(printer)
    if engine.state.seq == 0:
        from core.demo import build_demo

        engine.set_setting("sim_seed", seed)
        build_demo(engine, seed=seed)
    try:
        end = engine.clock.now() + duration
        while engine.clock.now() < end and not printer.closed:
            await engine.advance(min(60.0, end - engine.clock.now()))
    finally:
        await engine.close()
        if not printer.closed:
            sys.stdout.flush()
    return 0

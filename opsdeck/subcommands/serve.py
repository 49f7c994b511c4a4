"""``opsdeck serve FILE.toml | --demo | --db D``: a headless host until SIGTERM/SIGINT.

The host holds the database's lease, runs its fleet (real agents from a workflow
file, or the simulated demo paced at ``--speed``), and serves the control endpoint
on a 0600 unix socket beside the database (``--listen HOST:PORT`` adds TCP, where
commands need the bearer token of ``<db>.token``). Consoles, ``exec``, scripts and
``events --follow`` attach to it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..paths import new_demo_db
from .hosting import announce, say_proving, stop_on_signals
from .run import add_runtime_arguments, print_problems


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run a fleet headless and serve its control endpoint until stopped",
        description="Host a database headless until SIGTERM or SIGINT: a workflow file on real agents, "
        "the simulated demo fleet (--demo), or an existing simulated database (--db). Clients attach "
        "through the unix socket beside the database (opsdeck console/exec/script/events --db D).",
    )
    p.add_argument("file", nargs="?", metavar="FILE.toml", help="workflow file to run on local agent processes")
    p.add_argument("--demo", action="store_true", help="the built-in simulated demo fleet")
    p.add_argument(
        "--db", metavar="PATH", help="database file (--demo default: a new one per run in the data directory)"
    )
    p.add_argument("--listen", metavar="HOST:PORT", help="also serve on TCP (commands need the token in <db>.token)")
    p.add_argument(
        "--speed", type=float, default=None, help="simulated seconds per wall second (default: the config's)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a new simulated fleet (default 0)")
    p.add_argument("--create", action="store_true", help="make --db if it does not exist")
    add_runtime_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.file or args.demo or args.db):
        print("opsdeck serve: give a workflow file, --demo, or --db of a simulated database", file=sys.stderr)
        return 2
    if args.file and args.demo:
        print("opsdeck serve: a workflow file or --demo, not both", file=sys.stderr)
        return 2
    if args.speed is not None and not args.speed > 0:
        print("opsdeck serve: --speed must be above 0", file=sys.stderr)
        return 2
    if args.listen:
        from core.host.server import parse_listen

        try:
            parse_listen(args.listen)
        except ValueError as exc:
            print(f"opsdeck serve: {exc}", file=sys.stderr)
            return 2
    from core.config import load_config

    config = load_config(args.config)
    if (args.runtime != "local" or args.address) and not args.file:
        print("opsdeck serve: --runtime and --address are for a workflow file", file=sys.stderr)
        return 2
    if args.file:
        from .run import prepare

        prepared = prepare(args, config, "opsdeck serve")
        if prepared is None:
            return 2
        wfile, specs, db = prepared
        return asyncio.run(_serve_local(db, config, wfile, specs, args.listen, args.runtime, args.address))
    if args.demo:
        db = Path(args.db) if args.db else new_demo_db()
        if not args.db:
            print(f"# opsdeck serve: a new demo database {db}", file=sys.stderr)
    else:
        db = Path(args.db)
    return asyncio.run(_serve_sim(db, config, args))


async def _serve_sim(db: Path, config, args: argparse.Namespace) -> int:
    from core.host.host import Host

    stop = stop_on_signals()
    host = await Host.open_sim(
        db,
        config,
        demo=args.demo,
        seed=args.seed,
        speed=args.speed,
        recurring=args.demo,
        create=args.create or args.demo,
    )
    try:
        await host.serve(args.listen)
        announce(host)
        await host.run(stop)
    finally:
        await host.close()
    return 0


async def _serve_local(
    db: Path,
    config,
    wfile,
    specs,
    listen: str | None,
    runtime: str = "local",
    address: str | None = None,
) -> int:
    from core.host.host import Host
    from core.workflow_file import WorkflowFileError

    stop = stop_on_signals()  # before any agent starts: a stop always cleans up
    say_proving("serve")
    try:
        host = await Host.open_local(db, wfile, specs, config, runtime=runtime, address=address)
    except ConnectionError as exc:  # Ray did not come up, or went away while joining
        print(f"opsdeck serve: cannot reach the Ray cluster: {exc}; nothing was started", file=sys.stderr)
        return 2
    except WorkflowFileError as exc:  # what the file asks does not fit the cluster
        print_problems(exc)
        return 2
    try:
        await host.serve(listen)
        announce(host)
        await host.run(stop)
    finally:
        await host.close()
    return 0

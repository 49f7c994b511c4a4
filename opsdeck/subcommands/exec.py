"""``opsdeck exec [--db PATH] [--json] 'COMMAND'``: one slash command against a database.

When a host runs the database (``opsdeck serve``, ``run``, ``demo``, a console), the
command is sent to it and runs on its live fleet: on real agents ``pause`` stops
the processes. Otherwise the database is opened in-process on the simulated
runtime, under its lease; an empty database gets the demo fleet first. On a database
of real processes (local, Ray) with no host, only read-only commands are answered: a
command that would change the fleet is refused (exit 2) naming the host to start.
A database that does not exist is refused unless ``--create``. The command is recorded in
the log; exit 0 on success, 1 when the command fails, 2 when it cannot be run, 3 when
the live host answered something it cannot read (the command may have run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.host.attach import connect
from core.host.client import UNRESPONSIVE_S, HostClient
from core.host.errors import HostBadAnswer, HostGone, HostUnresponsive
from core.host.paths import check_database

from ..output import BAD_ANSWER, print_response
from ..paths import default_db

if TYPE_CHECKING:
    from core.config import Config

# The config (pydantic) loads when a config file is given or the database is opened
# here; a command sent to a live host goes over the standard library (core.host.client).


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exec",
        help="run one slash command against a database and print the response",
        description='Run one slash command (e.g. "/workflow-status workflow_001") against the state in a database. '
        "An empty database gets the demo fleet first. See `opsdeck help` for the commands.",
    )
    p.add_argument("command_text", metavar="COMMAND", help="the slash command, quoted as one shell argument")
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the full response as one JSON object (errors still print their message on stderr)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of a new demo fleet (default 0)")
    p.add_argument("--advance", metavar="DURATION", help="run the simulated clock this long first (e.g. 10m)")
    p.add_argument("--actor", default="operator", help="who the command is recorded as (default operator)")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=UNRESPONSIVE_S,
        metavar="SECONDS",
        help=f"give up on a live host stopped or not answering this long (default {UNRESPONSIVE_S:g}; "
        "a long command on a host that answers is waited for)",
    )
    p.add_argument("--create", action="store_true", help="make the database (with the demo fleet) if it does not exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _config(args.config) if args.config else None  # checked before anything is sent
    db = Path(args.db) if args.db else default_db()
    advance = 0.0
    if args.advance:
        from core.commands.payloads import parse_duration

        try:
            advance = parse_duration(args.advance)
        except ValueError as exc:
            print(f"opsdeck: --advance: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(_run(db, config, args, advance))


def _config(path: str | None) -> Config:
    """The config an engine opened here uses: pydantic loads only when it is needed
    (a file given, or no live host), not for a command sent to a host."""
    from core.config import load_config

    return load_config(path)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < v < 86400:
        raise argparse.ArgumentTypeError(f"{text}: must be above 0 and under a day")
    return v


async def _run(db: Path, config: Config | None, args: argparse.Namespace, advance: float) -> int:
    check_database(db, args.create)
    where = await connect(db, kind="exec")
    if isinstance(where, HostClient):
        async with where:
            if advance:
                print(
                    f"opsdeck: --advance: {db} is run by a live host (pid {where.pid}) whose clock is its own; "
                    "nothing was sent (on a simulated host: opsdeck exec --db DB '/host advance 10m')",
                    file=sys.stderr,
                )
                return 2
            where.unresponsive_s = args.timeout
            try:
                resp = await where.send(args.command_text, actor=args.actor)
            except HostUnresponsive as exc:
                print(
                    f"opsdeck: {exc}; the command was sent: if the host runs again it commits whole or not at "
                    f"all (opsdeck events --db {db} --type COMMAND_EXECUTED shows which)",
                    file=sys.stderr,
                )
                return 1
            except HostBadAnswer as exc:  # a HostGone: named first
                print(
                    f"opsdeck: {exc}; the host is not known to be gone; the command was sent and may have run: "
                    f"opsdeck events --db {db} --type COMMAND_EXECUTED shows whether",
                    file=sys.stderr,
                )
                return BAD_ANSWER
            except HostGone as exc:
                print(
                    f"opsdeck: {exc}; the command was sent and either committed whole or not at all: "
                    f"opsdeck events --db {db} --type COMMAND_EXECUTED shows which",
                    file=sys.stderr,
                )
                return 1
        return _print(resp, args)
    # Only a database without a host opens an engine here: a client of a live host does
    # not load the command set, the session or the demo (about 0.3 s of CPU of its start).
    from core.commands import attach, run_command
    from core.host.language import services
    from core.host.offline import command_refusal, fleet_runtime, refusal
    from core.session import open_sim

    try:
        engine = await open_sim(db, config if config is not None else _config(None), seed=args.seed, demo=True)
        try:
            runtime = fleet_runtime(engine.state)
            refused = (
                refusal(db, runtime, "--advance (the simulated clock)")
                if advance and runtime
                else command_refusal(engine.state, db, args.command_text)
            )
            if refused:
                print(f"opsdeck: {refused}", file=sys.stderr)
                return 2
            if advance:
                attach(engine)  # stored staged resumptions advance with the clock
                await engine.advance(advance)
            resp = await run_command(
                services(engine), args.command_text, actor=args.actor, commit=True
            )  # /host: NO_HOST
        finally:
            await engine.close()
    finally:
        where.release()
    return _print(resp, args)


def _print(resp: dict[str, Any], args: argparse.Namespace) -> int:
    return print_response(resp, args.json)

"""``opsdeck console``: the console on a database (the default when no verb is given)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import default_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console",
        help="open the console on a database (the default)",
        description="Open the operations console on a database (default: the user's data directory). "
        "When a live host (opsdeck serve, run, demo or another console) holds the database, the console "
        "attaches to it; otherwise it becomes the host.",
    )
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--readonly", action="store_true", help="watch only: refuse every state change (stays live)")
    p.add_argument("--create", action="store_true", help="make the database if it does not exist")
    p.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second")
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also serve the control endpoint on TCP when this process hosts (commands need the token in <db>.token)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.config import load_config

    from ..console import run_console

    return run_console(
        db=Path(args.db) if args.db else default_db(),
        config=load_config(args.config),
        demo=False,
        speed=args.speed,
        readonly=args.readonly,
        create=args.create or not args.db,
        listen=args.listen,
    )

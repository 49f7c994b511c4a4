"""``opsdeck events``: read (and follow) the event log of a database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from core.store import Store

from ..paths import default_db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="print the event log", description="Print the event log as event lines (or JSON).")
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they are written")
    p.add_argument("--type", dest="types", action="append", metavar="T", help="only events of this type (repeatable)")
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events after this sequence number")
    p.add_argument("--json", action="store_true", help="one JSON object per line with seq, ts, actor and hash")
    p.add_argument("--limit", type=int, default=None, help="at most this many events")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    store = await Store.open(Path(args.db) if args.db else default_db(), readonly=True)
    try:
        cursor = args.since
        printed = 0
        while True:
            batch = await store.read_events(cursor, 2000, types=args.types, check=True)
            if args.types and not batch:
                # The filter skipped rows: move the cursor past them.
                cursor = max(cursor, await store.count_events())
            for ev in batch:
                if args.limit is not None and printed >= args.limit:
                    return 0
                if args.json:
                    line = json.dumps({"seq": ev.seq, "ts": ev.ts, "type": ev.type, "component": ev.component,
                                       "scope": ev.scope, "actor": ev.actor, "data": ev.data})
                else:
                    line = ev.line()
                sys.stdout.write(line + "\n")
                printed += 1
                cursor = ev.seq
            if batch:
                continue
            if not args.follow:
                return 0
            sys.stdout.flush()
            await asyncio.sleep(0.5)
    finally:
        await store.close()

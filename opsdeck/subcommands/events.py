"""``opsdeck events``: read (and follow) the event log of a database.

The log is read from the database (a read-only connection). ``--follow`` then
follows the live host's committed-event stream when one runs the database (and
says so, and when it is gone: "the host (pid N) is gone"), else keeps reading the
file; when a host goes away the follower goes on reading the file and attaches to
the next host that takes the lease.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.host.errors import HostBadAnswer, HostBusy, HostGone, HostRefused
from core.host.paths import check_database

from ..output import BAD_ANSWER, event_record, json_line
from ..paths import default_db

if TYPE_CHECKING:
    from core.events import Event
    from core.host.client import HostClient
    from core.store import Store

# The store and the event catalogue load in the verb's run (not to build the parser).


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "events", help="print the event log", description="Print the event log as event lines (or JSON)."
    )
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they are written")
    p.add_argument(
        "--type", dest="types", action="append", metavar="T", help="only events of this type (repeatable; UPPER_CASE)"
    )
    p.add_argument("--since", type=_whole(0), default=0, metavar="SEQ", help="only events after this sequence number")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: seq, ts, type, component, scope, actor, severity, data",
    )
    p.add_argument("--limit", type=_whole(1), default=None, help="at most this many events (1 or more)")
    p.set_defaults(func=run)


def _whole(least: int) -> Any:
    """An argparse type: a whole number no less than ``least`` (a bad one exits 2)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"{n} is less than {least}")
        return n

    return parse


def type_problem(types: list[str], in_log: set[str]) -> str | None:
    """Why a ``--type`` can match nothing: not UPPER_CASE, or a type neither the engine nor the log knows."""
    from core.event_types import known_types

    known = known_types() | in_log
    for t in types:
        if t != t.upper() and t.upper() in known:
            return f"--type {t}: event types are upper case; did you mean {t.upper()}?"
        if t not in known:
            close = difflib.get_close_matches(t.upper(), sorted(known), n=3, cutoff=0.5)
            return f"--type {t}: no such event type" + (
                f"; did you mean {', '.join(close)}?"
                if close
                else "; known types include " + ", ".join(sorted(known)[:10]) + " …"
            )
    return None


def run(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else default_db()
    check_database(db, create=False, can_create=False)
    return asyncio.run(_run(db, args))


class Printer:
    """Prints events (filtered, up to ``--limit``) and remembers the last seq seen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cursor = args.since
        self.printed = 0

    @property
    def full(self) -> bool:
        return self.args.limit is not None and self.printed >= self.args.limit

    def __call__(self, ev: Event) -> None:
        self.cursor = max(self.cursor, ev.seq)
        if self.full or (self.args.types and ev.type not in self.args.types):
            return
        if self.args.json:
            line = json_line(event_record(ev))
        else:
            line = ev.line()
        sys.stdout.write(line + "\n")
        self.printed += 1


async def _run(db: Path, args: argparse.Namespace) -> int:
    """Print the log; exit 1 (after printing what there is) when it lost committed events."""
    from core.store import Store

    store = await Store.open(db, readonly=True)
    for note in store.trusted:
        print(f"# {note}", file=sys.stderr)
    try:
        lost = await store.anchor_problem()
        if lost is not None:
            print(f"opsdeck events: {db}: the event log is damaged at seq {lost[0]}: {lost[1]}", file=sys.stderr)
            sys.stderr.flush()
        rc = await _print_log(db, store, args)
    finally:
        await store.close()
    return 1 if lost is not None and rc == 0 else rc


async def _print_log(db: Path, store: Store, args: argparse.Namespace) -> int:
    from core.event_types import known_types

    out = Printer(args)
    if args.types:
        missing = [t for t in args.types if t not in known_types()]
        problem = (
            type_problem(args.types, {t for t in missing if await store.read_events(0, 1, types=[t])})
            if missing
            else None
        )
        if problem:
            print(f"opsdeck events: {problem}", file=sys.stderr)
            return 2
    while True:
        batch = await store.read_events(out.cursor, 2000, types=args.types, check=True)
        if args.types and not batch:
            # The filter skipped rows: move the cursor past them.
            out.cursor = max(out.cursor, await store.count_events())
        for ev in batch:
            out(ev)
            if out.full:
                return 0
        if batch:
            continue
        if not args.follow:
            return 0
        sys.stdout.flush()
        # Only --follow talks to a host: reading the log does not load the client.
        from core.host.client import HostClient

        client = HostClient.for_db(db)
        if client is not None:
            rc = await _follow_host(client, out)
            if out.full:
                return 0
            if rc is not None:
                return rc
            continue
        await asyncio.sleep(0.5)


async def _follow_host(client: HostClient, out: Printer) -> int | None:
    """Print the host's stream until it ends; say so when the host is gone (None: the
    file is followed on), or the exit code when it refused the stream."""
    print(f"# following the live host (pid {client.pid})", file=sys.stderr)

    def silence(why: str | None) -> None:
        sys.stdout.flush()
        print(f"# {why}" if why else f"# the host (pid {client.pid}) answers again", file=sys.stderr, flush=True)

    def busy(refusal: HostBusy | None, wait: float) -> None:
        sys.stdout.flush()
        if refusal is None:
            print(f"# the host (pid {client.pid}) took the stream", file=sys.stderr, flush=True)
        else:
            print(f"# {refusal}; asking again in {wait:g}s", file=sys.stderr, flush=True)

    def broken(sentence: str | None, wait: float) -> None:
        sys.stdout.flush()
        print(
            f"# {sentence}" if sentence else f"# the host (pid {client.pid}) took the stream again",
            file=sys.stderr,
            flush=True,
        )

    client.on_silence = silence
    client.on_busy = busy
    client.on_broken = broken
    try:
        async with client:
            async for ev in client.events(out.cursor):
                out(ev)
                if out.full:
                    return None
                sys.stdout.flush()
    except HostRefused as exc:
        sys.stdout.flush()
        print(f"opsdeck: {exc}; not following", file=sys.stderr)
        return 1
    except HostBadAnswer as exc:  # a HostGone: named first; following again would meet the same answer
        sys.stdout.flush()
        print(f"opsdeck: {exc}; the host is not known to be gone; not following", file=sys.stderr)
        return BAD_ANSWER
    except HostGone as exc:
        sys.stdout.flush()
        print(f"opsdeck: {exc}; following the database file until a host takes it again", file=sys.stderr)
        sys.stderr.flush()
    return None

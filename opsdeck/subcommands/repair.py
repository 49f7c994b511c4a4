"""``opsdeck repair --db D``: back to a database that verifies, saying what was lost.

The damaged file is moved aside (``D.damaged-<time>``, with its WAL and anchor) and a
new log is built from the longest prefix that verifies plus the later rows whose own
hashes still verify, re-chained behind a ``STATE_REPAIRED`` event naming what was
dropped (``core/repair.py``). A database that a host runs is refused (stop the host
first); so is one that verifies (nothing to repair).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from core.host.lease import LeaseHeld, acquire, host_info
from core.store_errors import StoreError

from ..paths import default_db

# The store, the verifier and the repair load in the verb's run (not to build the parser).


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repair",
        help="rebuild a damaged database from what still verifies (the damaged file is kept aside)",
        description="Move a damaged database aside (D.damaged-<time>) and rebuild it from the longest prefix of "
        "the log that verifies plus later rows whose own hashes verify, re-chained behind a STATE_REPAIRED event "
        "that says what was dropped. Afterwards `opsdeck verify` passes.",
    )
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = Path(args.db) if args.db else default_db()
    if not db.exists():
        print(f"opsdeck: no such database: {db}", file=sys.stderr)
        return 2
    return asyncio.run(_run(db, args.json))


async def _verifies(db: Path) -> bool:
    """Whether ``db`` opens and verifies as it is (then there is nothing to repair)."""
    from core.store import Store
    from core.verify import verify_store

    try:
        store = await Store.open(db, readonly=True)
    except StoreError:
        return False
    try:
        return (await verify_store(store)).ok
    except Exception:  # noqa: BLE001 - any failure to read it means it does not verify
        return False
    finally:
        await store.close()


async def _run(db: Path, as_json: bool) -> int:
    from core.repair import RepairError, repair

    try:
        lease = acquire(db, host_info(db, "repair", host=False))
    except LeaseHeld as exc:
        print(f"opsdeck: {exc}; stop it before repairing {db}", file=sys.stderr)
        return 2
    try:
        if await _verifies(db):
            print(f"opsdeck: {db} verifies: nothing to repair; nothing was changed", file=sys.stderr)
            return 0
        try:
            rep = await repair(db)
        except RepairError as exc:
            print(f"opsdeck: {exc}; nothing was changed", file=sys.stderr)
            return 2
    finally:
        lease.release()
    if as_json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        d = rep.as_dict()
        print(f"damaged file moved to {d['moved_to']}")
        print(
            f"kept seq 1-{d['prefix_through_seq']} as it was and {d['later_rows_kept']} later row(s) re-chained; "
            f"dropped {d['rows_dropped']} row(s)" + (f": seq {d['dropped_seqs'][:20]}" if d["dropped_seqs"] else "")
        )
        if d["checkpoints_not_carried_over"]:
            print(f"checkpoints not carried over: {d['checkpoints_not_carried_over']}")
        print(f"{d['events_after']} events; STATE_REPAIRED records this. Check with: opsdeck verify --db {db}")
    return 0

"""``opsdeck verify``: walk the hash chain and the checkpoints of a database."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sqlite3
import sys
from pathlib import Path

from ..paths import default_db

# The store and the verifier load in the verb's run (not to build the parser).


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="verify the event chain and checkpoints",
        description="Walk the hash chain and every checkpoint; exit 1 naming the first bad sequence number.",
    )
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.collector import GC_THRESHOLDS

    # The replay allocates per event and frees nearly all of it: the engine's thresholds
    # (a young collection every 50,000 allocations) spare it ~10% of its CPU in collections.
    gc.set_threshold(*GC_THRESHOLDS)
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from core.engine.checkpoints import unrecorded_words
    from core.store import Store, repair_hint
    from core.verify import verify_store

    store = await Store.open(Path(args.db) if args.db else default_db(), readonly=True)
    for note in store.trusted:
        print(f"# {note}", file=sys.stderr)
    try:
        rep = await verify_store(store)
    except sqlite3.DatabaseError as exc:  # pages SQLite itself cannot read
        problems = await store.integrity()
        print(f"FAULT: the database file is damaged: {exc}")
        for table, problem in problems[:10]:
            print(f"  table {table}: {problem}")
        print(repair_hint(store.path))
        return 1
    finally:
        await store.close()
    if args.json:
        out = rep.as_dict()
        if not rep.ok:
            out["repair"] = repair_hint(store.path)
        print(json.dumps(out, indent=2))
    else:
        print(f"events: {rep.events} (last seq {rep.last_seq})")
        print(f"checkpoints: {len(rep.checkpoints_ok)} ok, {len(rep.checkpoints_bad)} bad")
        if rep.checkpoints_unrecorded:
            print(unrecorded_words(rep.checkpoints_unrecorded))
        print(f"SQLite integrity_check: {'ok' if not rep.integrity else f'{len(rep.integrity)} problem(s)'}")
        for f in rep.faults[:10]:
            print(f"  seq {f.seq}: {f.problem}")
        for cid, problem in rep.checkpoints_bad.items():
            print(f"  checkpoint {cid}: {problem}")
        for table, problem in rep.integrity[:10]:
            print(f"  table {table}: {problem}")
        if rep.ok:
            print("chain verified")
        elif rep.first_bad_seq is not None:
            print(f"FAULT: first bad sequence number {rep.first_bad_seq}")
        elif rep.checkpoints_bad:
            print("FAULT: checkpoint(s) failed verification")
        else:
            tables = ", ".join(sorted({t for t, _ in rep.integrity}))
            extra = " (metric samples only: the event log and the checkpoints verify)" if rep.metrics_only else ""
            print(f"FAULT: SQLite's integrity check failed in table {tables}{extra}")
        if not rep.ok:
            print(repair_hint(store.path))
    return 0 if rep.ok else 1

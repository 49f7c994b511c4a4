"""SQLite's own integrity check, each problem attributed to the table it is in.

The hash chain proves the event rows; it says nothing of the b-trees that hold them,
of the indexes, of the checkpoint, archive and metrics tables, or of the free list.
``PRAGMA integrity_check`` does, in SQLite's words ("Tree 9 page 31 cell 2: ...",
"row 5 missing from index metrics_lookup"): the tree's root page, or the index,
tells which table a problem is in, so a report can say "table metrics" (whose loss
costs samples) apart from "table events" (whose loss costs the log).
"""

from __future__ import annotations

import re
import sqlite3

import aiosqlite

_TREE = re.compile(r"\b[Tt]ree (\d+)\b")
_INDEX = re.compile(r"\bindex (\w+)\b")
FILE = "file"
"""What a problem outside any table is attributed to (the free list, page accounting)."""


async def sqlite_integrity(db: aiosqlite.Connection, quick: bool = False) -> list[tuple[str, str]]:
    """(table, problem) for each problem ``integrity_check`` (``quick_check``) finds;
    [] for a sound file. A file SQLite cannot even walk gives one problem, "file"."""
    try:
        schema = await (await db.execute("SELECT type, name, tbl_name, rootpage FROM sqlite_master")).fetchall()
    except sqlite3.DatabaseError as exc:
        return [("sqlite_master", str(exc))]
    by_root = {int(r[3]): str(r[2]) for r in schema if r[3]}
    by_index = {str(r[1]): str(r[2]) for r in schema if r[0] == "index"}
    pragma = "quick_check" if quick else "integrity_check"
    try:
        rows = await (await db.execute(f"PRAGMA {pragma}(1000)")).fetchall()
    except sqlite3.DatabaseError as exc:
        # A page so damaged that the check itself stops: check table by table to say where.
        tables = sorted({str(r[1]) for r in schema if r[0] == "table"})
        out = []
        for table in tables:
            try:
                found = await (await db.execute(f'PRAGMA {pragma}("{table}")')).fetchall()
            except sqlite3.DatabaseError as texc:
                out.append((table, str(texc)))
                continue
            out += [(table, str(r[0])) for r in found if r[0] != "ok"]
        return out or [(FILE, str(exc))]
    out = []
    for (msg,) in rows:
        text = str(msg)
        if text == "ok":
            continue
        table = FILE
        m = _TREE.search(text)
        if m is not None:
            table = by_root.get(int(m.group(1)), FILE)
        else:
            i = _INDEX.search(text)
            if i is not None:
                table = by_index.get(i.group(1), FILE)
        out.append((table, text.replace("*** in database main ***\n", "").strip()))
    return out

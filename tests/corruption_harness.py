"""Corrupt copies of a small database and run every verb on each (seeded, bounded).

``python -m tests.corruption_harness SEED TRIALS WORKDIR`` prints one JSON report.
Each verb runs in this process through ``opsdeck.cli.main`` in a worker thread, so a
hang (a verb that never returns, or leaves a database thread behind that would keep
the process from exiting) is seen as such, and an exception escaping ``main`` is the
traceback a user would have seen. Used by ``tests/test_core_corruption.py`` and
``bench/faults.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

VERB_TIMEOUT_S = 60.0


def build(base: Path) -> Path:
    """A small demo database: some minutes of simulated work and two checkpoints."""
    from opsdeck.cli import main

    db = base / "clean.db"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["exec", "--db", str(db), "--create", "--advance", "10m", "/coordination-hub checkpoint"])
    assert rc == 0
    return db


def run_verb(argv: list[str]) -> dict[str, Any]:
    """One verb in a worker thread: rc, output, raised (a traceback), hung, leaked threads."""
    from opsdeck.cli import main

    before = {t.ident for t in threading.enumerate()}
    out, err = io.StringIO(), io.StringIO()
    res: dict[str, Any] = {"argv": argv[0], "rc": None, "raised": None}

    def target() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                res["rc"] = main(argv)
            except SystemExit as exc:
                res["rc"] = exc.code
            except BaseException as exc:
                res["raised"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    t.start()
    t.join(VERB_TIMEOUT_S)
    res["hung"] = t.is_alive()
    res["seconds"] = round(time.monotonic() - start, 3)
    deadline = time.monotonic() + 5.0
    leaked: list[str] = []
    while time.monotonic() < deadline:
        leaked = [x.name for x in threading.enumerate() if x.ident not in before and x is not t and not x.daemon]
        if not leaked:
            break
        time.sleep(0.05)
    res["leaked_threads"] = leaked
    res["stderr"] = err.getvalue()[-2000:]
    res["stdout"] = out.getvalue()
    return res


def readable_event_count(db: Path) -> int | None:
    """The events' count, or None when the file cannot be read as a database at all."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return None


def verify_report(db: Path) -> dict[str, Any]:
    r = run_verb(["verify", "--db", str(db), "--json"])
    try:
        rep = json.loads(r.pop("stdout") if r["stdout"].lstrip().startswith("{") else "{}")
    except ValueError:
        rep = {}
    return {"rc": r["rc"], "raised": r["raised"], "hung": r["hung"], "report": rep, "verb": r}


def copy_anchor(src: Path, dst: Path) -> None:
    """A copy of a database takes its head anchor along (without it the copy reports a loss)."""
    head = Path(f"{src}.head")
    if head.exists():
        shutil.copyfile(head, f"{dst}.head")


def corrupt(clean: Path, target: Path, rng: random.Random, kind: str) -> str:
    """Copy ``clean`` to ``target`` and damage it; return what was done."""
    copy_anchor(clean, target)
    data = bytearray(clean.read_bytes())
    con = sqlite3.connect(clean)
    try:
        if kind == "checkpoint":
            cid, state = con.execute("SELECT id, state FROM checkpoints ORDER BY id DESC LIMIT 1").fetchone()
            what = f"a byte of checkpoint {cid}'s state"
            needle = state.encode()
        elif kind == "event":
            n = con.execute("SELECT max(seq) FROM events").fetchone()[0]
            seq = rng.randint(max(1, n - 60), n) if rng.random() < 0.6 else rng.randint(1, n)
            needle = con.execute("SELECT data FROM events WHERE seq=?", (seq,)).fetchone()[0].encode()
            what = f"a byte of event {seq}'s data"
        else:
            needle = b""
            what = ""
    finally:
        con.close()
    if kind in ("checkpoint", "event"):
        # A random 24-byte piece of the value, found in the file (large values span pages).
        start = rng.randrange(max(1, len(needle) - 24))
        piece = needle[start : start + 24]
        pos = data.find(piece)
        if pos < 0 or len(piece) < 2:
            kind = "page"
        else:
            i = pos + rng.randrange(len(piece))
            data[i] ^= 1 << rng.randrange(8)
            target.write_bytes(bytes(data))
            return what
    if kind == "page":
        i = rng.randrange(4096, len(data))
        data[i] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(data))
        return f"bit flip at offset {i}"
    if kind == "empty":
        target.write_bytes(b"")
        return "truncated to 0 bytes"
    cut = rng.randrange(1, len(data))
    target.write_bytes(bytes(data[:cut]))
    return f"truncated to {cut} bytes"


KINDS = ["checkpoint", "event", "event", "page", "empty", "truncate"]


def trial(clean: Path, work: Path, rng: random.Random, n: int) -> dict[str, Any]:
    kind = KINDS[n % len(KINDS)]
    bad = work / f"t{n}.db"
    what = corrupt(clean, bad, rng, kind)
    before = verify_report(bad)
    script = work / "s.ops"
    verbs: list[dict[str, Any]] = []
    for argv in (
        ["exec", "--db", "{db}", "/workflow-status"],
        ["script", str(script), "--db", "{db}"],
        ["demo", "--headless", "--for", "30", "--db", "{db}"],
        ["events", "--db", "{db}"],
    ):
        copy = work / f"t{n}-{argv[0]}.db"
        shutil.copyfile(bad, copy)
        copy_anchor(bad, copy)
        count = readable_event_count(copy)
        r = run_verb([a.replace("{db}", str(copy)) for a in argv])
        r.pop("stdout")
        r["events_before"], r["events_after"] = count, readable_event_count(copy)
        if r["rc"] == 0 and argv[0] != "events":
            after = verify_report(copy)
            r["verify_after"] = {
                "rc": after["rc"],
                "first_bad_seq": after["report"].get("first_bad_seq"),
                "checkpoints_bad": sorted(after["report"].get("checkpoints_bad", {})),
            }
        verbs.append(r)
        for suffix in ("", "-wal", "-shm", ".head"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    return {
        "kind": kind,
        "what": what,
        "verify": {k: before[k] for k in ("rc", "raised", "hung")}
        | {
            "first_bad_seq": before["report"].get("first_bad_seq"),
            "checkpoints_bad": sorted(before["report"].get("checkpoints_bad", {})),
            "checkpoints_ok": before["report"].get("checkpoints_ok", []),
            "integrity_tables": sorted({x["table"] for x in before["report"].get("integrity", [])}),
            "metrics_only": bool(before["report"].get("metrics_only")),
            "stderr": before["verb"]["stderr"],
            "leaked_threads": before["verb"]["leaked_threads"],
        },
        "verbs": verbs,
    }


def main(argv: list[str]) -> int:
    seed, trials, work = int(argv[0]), int(argv[1]), Path(argv[2])
    work.mkdir(parents=True, exist_ok=True)
    (work / "s.ops").write_text("advance 1m\n/workflow-status\n", encoding="utf-8")
    clean = build(work)
    rng = random.Random(seed)
    results = [trial(clean, work, rng, n) for n in range(trials)]
    sys.stdout.write(json.dumps({"seed": seed, "trials": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

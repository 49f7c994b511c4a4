"""``opsdeck logs TASK``: a task's whole output, from the files its agent host keeps.

Every byte a task prints on the local runtime goes to
``<db>.agents/output/<agent>/<task>.<attempt>.log`` (rotated once to ``.log.1`` at
its size limit). This prints the newest attempt's parts oldest first; ``--follow``
keeps printing what is appended (across a rotation, and on to a newer attempt's
file) until interrupted. Files are opened without following symlinks and refused
when another user owns them, as the database is.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from core.private import PrivateError, open_beside, trust_requested
from core.runtimes.output import output_path

from ..paths import data_dir, default_db

FOLLOW_POLL_S = 0.2
CHUNK = 64 * 1024
_ATTEMPT = re.compile(r"\.(\d+)\.log$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "logs",
        help="print a task's whole output (local runtime)",
        description="Print a task's whole output from the files its agent host keeps beside the database.",
    )
    p.add_argument("task", help="task id (workflow/task, or the task's own id when it is unique)")
    p.add_argument("--db", metavar="PATH", help=f"database file (default {default_db()})")
    p.add_argument("--file", metavar="FILE.toml", help="the workflow file the run came from (its default database)")
    p.add_argument("--attempt", type=int, default=None, metavar="N", help="this attempt (default: the newest)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing what the task writes")
    p.set_defaults(func=run)


def database(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    if args.file:
        return data_dir() / "runs" / f"{Path(args.file).stem}.db"
    return default_db()


def candidates(out_dir: Path, task: str) -> list[Path]:
    """The output files of ``task`` (any agent, any attempt), exact id first, else by suffix."""
    if not out_dir.is_dir():
        return []
    exact = output_path(Path(""), task, 0).name.rsplit(".", 2)[0]
    found: list[Path] = []
    for agent_dir in sorted(out_dir.iterdir()):
        if not agent_dir.is_dir() or agent_dir.is_symlink():
            continue
        for f in agent_dir.iterdir():
            m = _ATTEMPT.search(f.name)
            if m is None:
                continue
            stem = f.name[: m.start()]
            if stem == exact or stem.endswith("_" + exact):
                found.append(f)
    return found


def attempt_of(path: Path) -> int:
    m = _ATTEMPT.search(path.name)
    return int(m.group(1)) if m else -1


def pick(files: list[Path], attempt: int | None) -> tuple[Path | None, str | None]:
    """The file to print and, when there is none, why."""
    if not files:
        return None, "no output file"
    stems = {_ATTEMPT.sub("", f.name) for f in files}
    if len(stems) > 1:
        return None, f"the id matches several tasks: {', '.join(sorted(stems))}; give the whole id"
    if attempt is not None:
        files = [f for f in files if attempt_of(f) == attempt]
        if not files:
            return None, f"no output file of attempt {attempt}"
    return max(files, key=lambda f: (attempt_of(f), f.stat().st_mtime)), None


def _open(path: Path) -> int:
    return open_beside(path, os.O_RDONLY, "task output file", trust=trust_requested())


def copy(fd: int) -> int:
    """Write what ``fd`` has from its offset to stdout; the bytes written."""
    n = 0
    while chunk := os.read(fd, CHUNK):
        sys.stdout.buffer.write(chunk)
        n += len(chunk)
    sys.stdout.buffer.flush()
    return n


def run(args: argparse.Namespace) -> int:
    from core.runtimes.launching import run_dir_for

    db = database(args)
    out_dir = run_dir_for(db) / "output"
    path, why = pick(candidates(out_dir, args.task), args.attempt)
    if path is None:
        print(f"opsdeck logs: {args.task}: {why} under {out_dir}", file=sys.stderr)
        return 1
    rotated = path.with_name(path.name + ".1")
    try:
        if rotated.exists():
            fd = _open(rotated)
            copy(fd)
            os.close(fd)
        fd = _open(path)
        copy(fd)
        if not args.follow:
            os.close(fd)
            return 0
        return follow(fd, path, out_dir, args.task)
    except PrivateError as exc:
        print(f"opsdeck logs: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


def follow(fd: int, path: Path, out_dir: Path, task: str) -> int:
    """Print what is appended to ``path`` (and a newer attempt's file) until interrupted."""
    ino = os.fstat(fd).st_ino
    try:
        while True:
            if copy(fd):
                continue
            time.sleep(FOLLOW_POLL_S)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                continue
            if now.st_ino != ino:  # rotated: the rest of the old file was read above
                copy(fd)
                os.close(fd)
                fd, ino = _open(path), now.st_ino
                continue
            newest, _ = pick(candidates(out_dir, task), None)
            if newest is not None and newest != path and attempt_of(newest) > attempt_of(path):
                copy(fd)
                os.close(fd)
                path = newest
                print(f"--- attempt {attempt_of(path)} ({path}) ---", file=sys.stderr, flush=True)
                fd = _open(path)
                ino = os.fstat(fd).st_ino
    except KeyboardInterrupt:
        return 0
    finally:
        os.close(fd)

"""Where opsdeck keeps its files: the user's data directory (platformdirs)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    override = os.environ.get("OPSDECK_HOME")
    return Path(override) if override else Path(platformdirs.user_data_dir("opsdeck", appauthor=False))


def default_db() -> Path:
    return data_dir() / "opsdeck.db"


def demo_db() -> Path:
    """The demo database of older versions (kept: it is never deleted)."""
    return data_dir() / "demo.db"


def demo_dir() -> Path:
    """Where each ``opsdeck demo`` run without ``--db`` gets its own database."""
    return data_dir() / "demos"


def new_demo_db() -> Path:
    """A database path no other demo uses: ``demos/demo-YYYYmmdd-HHMMSS[-N].db``.

    The name is claimed by creating its lease file exclusively (two demos started in
    the same second get different names); the database itself is created whole when
    the host opens it."""
    d = demo_dir()
    d.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        p = d / (f"demo-{stamp}.db" if n == 1 else f"demo-{stamp}-{n}.db")
        if p.exists():
            continue
        try:
            fd = os.open(f"{p}.lease", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return p
    raise FileExistsError(f"{d}: no free demo database name for {stamp}")


def live_demo_db() -> Path | None:
    """The newest demo database a live host runs, if any (``opsdeck demo`` attaches to it)."""
    from core.host.lease import current_holder

    d = demo_dir()
    if not d.is_dir():
        return None
    live = []
    for lease in d.glob("*.db.lease"):
        db = lease.with_suffix("")
        holder = current_holder(db)
        if holder is not None:
            live.append((holder.started_at or 0.0, db))
    return max(live)[1] if live else None

"""One writer per database: an exclusive ``flock`` on ``<db>.lease``.

The lock belongs to the open file description, so the operating system releases
it when the holder exits, however it exits (SIGKILL included): there is no stale
lease to clean up. The file also carries who holds it (pid, command line, start
time, socket, listen address, runtime kind, database) as JSON, so a refused
process can say who is in the way and how to attach. A file whose lock nobody
holds names nobody, whatever it says.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..private import open_beside, trust_requested
from ..store_errors import classify
from .errors import HostError
from .paths import lease_path


@dataclass
class Holder:
    """Who holds a database's lease, as the holder recorded it."""

    pid: int | None
    command: str = ""
    started_at: float | None = None
    socket: str | None = None
    listen: str | None = None
    runtime: str | None = None
    db: str | None = None
    host: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Holder:
        known = ("pid", "command", "started_at", "socket", "listen", "runtime", "db", "host")
        return cls(
            pid=data.get("pid"),
            command=data.get("command") or "",
            started_at=data.get("started_at"),
            socket=data.get("socket"),
            listen=data.get("listen"),
            runtime=data.get("runtime"),
            db=data.get("db"),
            host=bool(data.get("host", True)),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def since(self) -> str:
        if self.started_at is None:
            return "an unknown time"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))

    def describe(self) -> str:
        """One line for a refusal: pid, command, since when, how to attach."""
        who = f"pid {self.pid}" if self.pid else "another process"
        cmd = f" ({self.command})" if self.command else ""
        return f"{who}{cmd}, since {self.since()}"


class LeaseHeld(Exception):
    """Another live process holds the lease."""

    def __init__(self, holder: Holder, db: str | Path) -> None:
        self.holder = holder
        self.db = Path(db)
        super().__init__(f"{db} is run by {holder.describe()}")


def host_info(
    db: str | Path, runtime: str, socket: str | Path | None = None, listen: str | None = None, host: bool = True
) -> dict[str, Any]:
    """The holder record of this process (``host``: it serves clients, rather than
    being a one-shot tool such as an in-process ``exec``)."""
    return {
        "host": host,
        "pid": os.getpid(),
        "command": command_line(),
        "started_at": time.time(),
        "socket": str(socket) if socket else None,
        "listen": listen,
        "runtime": runtime,
        "db": str(Path(db).absolute()),
    }


def command_line() -> str:
    """This process's command line as the user typed it (``opsdeck serve ...``)."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("opsdeck") or argv[0].endswith("__main__.py")):
        argv[0] = "opsdeck"
    return " ".join(argv)


class Lease:
    """A held lease; :meth:`release` (or process exit) gives it up."""

    def __init__(self, db: Path, fd: int, info: dict[str, Any]) -> None:
        self.db = db
        self.path = lease_path(db)
        self._fd: int | None = fd
        self.info = dict(info)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def update(self, **info: Any) -> None:
        """Record more about the holder (e.g. the listen address once bound)."""
        self.info.update(info)
        if self._fd is not None:
            _write(self._fd, self.info)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _write(fd: int, info: dict[str, Any]) -> None:
    data = json.dumps(info, sort_keys=True).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read(fd: int, tries: int = 20) -> Holder:
    for _ in range(tries):  # the holder writes its record just after locking
        raw = os.pread(fd, 65536, 0)
        if raw:
            try:
                data = json.loads(raw)
                if isinstance(data, dict):
                    return Holder.from_json(data)
            except ValueError:
                pass
        if tries > 1:
            time.sleep(0.01)
    return Holder(pid=None)


def acquire(db: str | Path, info: dict[str, Any]) -> Lease:
    """Take the exclusive lease of ``db`` or raise :class:`LeaseHeld` naming the holder.

    The lease file is created 0600 beside the database (whose directory must exist),
    never through a symlink; one another user owns is refused (``--trust-owner`` aside)."""
    dbp = Path(db).absolute()
    try:
        fd = open_beside(lease_path(dbp), os.O_RDWR | os.O_CREAT, "lease", trust=trust_requested())
    except OSError as exc:
        err = classify(exc, str(dbp))
        raise (
            err if err is not None else HostError(f"{lease_path(dbp)}: cannot open the lease: {exc.strerror}")
        ) from None
    try:
        for attempt in range(10):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A probe (current_holder) holds a shared lock for an instant; a host
                # holds it for good and has written its record.
                holder = _read(fd, tries=1)
                if holder.pid is not None or attempt == 9:
                    raise LeaseHeld(holder, dbp) from None
                time.sleep(0.02)
    except BaseException:
        os.close(fd)
        raise
    _write(fd, info)
    return Lease(dbp, fd, info)


def current_holder(db: str | Path) -> Holder | None:
    """The live holder of ``db``'s lease, or None when no process holds the lock."""
    try:
        fd = open_beside(lease_path(db), os.O_RDONLY, "lease", trust=trust_requested())
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


__all__ = ["Holder", "Lease", "LeaseHeld", "acquire", "command_line", "current_holder", "host_info"]

"""What a failed SQLite write means, in words: a full disk, a read-only file system,
another process's lock, an I/O error.

SQLite reports these as ``OperationalError`` with an error code; a writer that only
caught "the database is damaged" told an operator whose disk was full that their
data was corrupt. :func:`classify` turns the error into a :class:`StorageError`
whose ``kind`` a host acts on (wait for a lock, refuse writes until space returns)
and whose message names the file and the condition.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

StorageKind = Literal["full", "readonly", "locked", "io"]

SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_INTERRUPT = 9
SQLITE_IOERR = 10
SQLITE_FULL = 13


class StoreError(Exception):
    """A database opsdeck cannot use; the message says why, in words."""


class StorageError(StoreError):
    """A write the storage refused for now (full, read-only, locked, I/O): nothing of it
    was committed; the same write can succeed once the condition passes."""

    def __init__(self, kind: StorageKind, path: str, message: str) -> None:
        super().__init__(message)
        self.kind: StorageKind = kind
        self.path = path


class PassingReadError(StoreError):
    """A read failed for a condition that passes (another process's lock, an interrupt):
    nothing is damaged and the same read can succeed later."""

    def __init__(self, why: str, path: str, exc: BaseException) -> None:
        super().__init__(f"{path}: {why} ({exc}); nothing is damaged, the read can succeed later")
        self.why = why


def _read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(Path(path).parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def classify(exc: BaseException, path: str) -> StorageError | None:
    """The StorageError ``exc`` stands for, or None when it is something else (damage,
    a constraint, a bug)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError):
        import errno

        if exc.errno == errno.ENOSPC:
            return StorageError("full", path, _full(path))
        if exc.errno == errno.EROFS:
            return StorageError("readonly", path, _readonly(path, True))
        return None
    if not isinstance(exc, sqlite3.Error):
        return None
    primary = _primary_code(exc)
    text = str(exc)
    if primary == SQLITE_FULL or "database or disk is full" in text:
        return StorageError("full", path, _full(path))
    if primary == SQLITE_READONLY or "readonly database" in text:
        return StorageError("readonly", path, _readonly(path, _read_only_fs(path)))
    if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in text:
        return StorageError(
            "locked",
            path,
            f"{path}: another process holds a lock on the database (an external `BEGIN EXCLUSIVE`, a backup?): "
            "the write waits for it; nothing was lost",
        )
    if primary == SQLITE_IOERR or "disk I/O error" in text:
        if _read_only_fs(path):
            return StorageError("readonly", path, _readonly(path, True))
        return StorageError(
            "io", path, f"{path}: the disk reported an I/O error ({text}); nothing of the write was committed"
        )
    return None


def passing(exc: BaseException) -> str | None:
    """The passing condition that failed a read, in words (another process's lock, an
    interrupted read), or None when reading again would meet the same failure (damage,
    a missing file, a bug)."""
    if isinstance(exc, PassingReadError):
        return exc.why
    if isinstance(exc, InterruptedError):
        return "the read was interrupted"
    if isinstance(exc, StorageError):
        return "another process holds a lock on it" if exc.kind == "locked" else None
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    primary = _primary_code(exc)
    if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in str(exc):
        return "another process holds a lock on it"
    if primary == SQLITE_INTERRUPT:
        return "the read was interrupted"
    return None


def _full(path: str) -> str:
    return (
        f"{path}: the disk holding the database is full: the write was refused and nothing of it was committed; "
        "writes are refused until space is freed (nothing committed before is lost)"
    )


def _readonly(path: str, fs: bool) -> str:
    if fs:
        return (
            f"{path}: the file system holding the database is read-only: writes are refused until it is writable "
            "again (nothing committed before is lost; reading still works)"
        )
    return (
        f"{path}: the database file (or its directory) is not writable by this user: writes are refused "
        "(nothing committed before is lost; reading still works)"
    )


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of an error it raised (the extended code's low byte);
    None for one raised without it (made in Python), then told by its message."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None

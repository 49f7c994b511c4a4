"""The head anchor: the last committed (seq, hash), kept beside the database.

SQLite in WAL mode keeps recent commits only in ``<db>-wal``; if that file is
deleted, truncated or damaged, SQLite silently opens the database as it was at the
last checkpoint, and the hash chain of what remains still verifies. So after each
group commit the store overwrites ``<db>.head`` (0600, one small record with its own
checksum) with the new head. Opening and ``opsdeck verify`` compare: a log that ends
before the anchor, or holds another row at the anchor's seq, has lost committed
events. The record is written after the commit returned (so it never runs ahead of
what is durable) and without an fsync of its own (so after a power loss it may lag:
a lagging anchor only weakens the check, it never raises a false alarm).

The database records that it is anchored (``meta.anchored``, set when it is created
or at its first commit), so an anchor deleted together with the WAL is a reported
loss too, not a database that never had one. The file is opened through its
directory with ``O_NOFOLLOW`` (:func:`core.private.open_beside`): a symlink planted at
``<db>.head`` is an error naming it, and its target is never written.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

from .private import open_beside

RECORD = 128
MAGIC = "opsdeck-head v1"


def anchor_path(db: str | Path) -> Path:
    return Path(f"{db}.head")


def seal(magic: str, fields: list[object]) -> bytes:
    """One record line: ``magic``, the fields, and a CRC-32 of the text before it (a torn
    or damaged record is told from one we wrote). Shared by the small files beside a
    database (this anchor, the clean-close record)."""
    body = " ".join([magic, *map(str, fields)])
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def unseal(magic: str, count: int, raw: bytes) -> list[str] | None:
    """The ``count`` fields of a :func:`seal` line, or None for one that is torn, damaged
    or not ``magic``'s."""
    try:
        parts = raw.decode("ascii").split()
    except UnicodeDecodeError:
        return None
    words = len(magic.split())
    if len(parts) != words + count + 1 or " ".join(parts[:words]) != magic:
        return None
    if f"{zlib.crc32(' '.join(parts[:-1]).encode()):08x}" != parts[-1]:
        return None
    return parts[words:-1]


def encode(seq: int, h: str) -> bytes:
    return seal(MAGIC, [seq, h]).ljust(RECORD, b" ")


def decode(raw: bytes) -> tuple[int, str] | None:
    """(seq, hash), or None for a record that is missing, torn or not ours."""
    fields = unseal(MAGIC, 2, raw)
    if fields is None:
        return None
    try:
        return int(fields[0]), fields[1]
    except ValueError:
        return None


def read_anchor(db: str | Path, trust: bool = False) -> tuple[int, str] | None:
    """The anchor's (seq, hash), or None when it is missing or unreadable as a record.
    A symlink, or a file another user owns (without ``trust``), raises PrivateError."""
    try:
        fd = open_beside(anchor_path(db), os.O_RDONLY, "anchor", trust=trust)
    except FileNotFoundError:
        return None
    try:
        return decode(os.pread(fd, RECORD, 0))
    except OSError:
        return None
    finally:
        os.close(fd)


class AnchorWriter:
    """Keeps ``<db>.head`` open and overwrites its record in place after each commit."""

    def __init__(self, db: str | Path, trust: bool = False) -> None:
        self.path = anchor_path(db)
        self.trust = trust
        self._fd: int | None = None

    def write(self, seq: int, h: str) -> None:
        if self._fd is None:
            self._fd = open_beside(self.path, os.O_WRONLY | os.O_CREAT, "anchor", trust=self.trust)
        os.pwrite(self._fd, encode(seq, h), 0)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

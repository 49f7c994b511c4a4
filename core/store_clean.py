"""The clean-close record: when opening may skip ``PRAGMA quick_check``.

``quick_check`` reads every page, so its cost follows the file's size (about 12 ms of
CPU for a 13 MB database). Like fsck's clean flag, a writer that closes the database
cleanly (the last connection gone, the WAL folded into the file and removed) leaves
``<db>.clean`` (0600, ours, written atomically): the file's device, inode, size,
mtime and ctime after the close, and when ``quick_check`` last passed on it.

Opening reads and deletes the record first (a process that then ends without a clean
close leaves none, so the next open checks), and skips the check only when every
recorded field matches the file now, no WAL with content is beside it and the check
that passed is younger than :data:`CLEAN_CHECK_MAX_AGE_S` (bit rot changes no
timestamp). Any write by another program changes the ctime, which no user can set
back; a copy is another inode. A record that is damaged or not ours means: check.
A symlink at ``<db>.clean`` is refused, and one another user owns is refused unless
trusted, as for the anchor (``core.private.open_beside``).

A file system's timestamps are coarse (a clock tick; a second or two on some): a write
in the same tick as the close, keeping the size, would leave mtime and ctime as recorded
(git's "racily clean" file). So the close sets the file's mtime back to just before its
own (:func:`leave_record`) and records that: any later write sets it to the time of the
write, which differs. (SQLite's file change counter, header offset 24, is no help: in WAL
mode it does not change with each transaction, and a write not made through SQLite does
not touch it.)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .anchor import seal, unseal
from .private import PrivateError, open_beside, write_private
from .store_errors import StoreError
from .store_schema import METRIC_TABLES, QUICK_CHECK_MAX_BYTES, clean_path, file_bytes, repair_hint

MAGIC = "opsdeck-clean v1"
RECORD_MAX = 256
"""The record is one short line; more than this is not ours."""
CLEAN_CHECK_MAX_AGE_S = 24 * 3600.0
"""A clean close spares the check only while the last check that passed is younger than this."""


@dataclass(frozen=True)
class CleanRecord:
    """The database file as a clean close left it, and when ``quick_check`` last passed."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    checked_at: float

    @classmethod
    def of(cls, st: os.stat_result, checked_at: float) -> CleanRecord:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, checked_at)

    def encode(self) -> bytes:
        return seal(MAGIC, [self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns, repr(self.checked_at)])

    @classmethod
    def decode(cls, raw: bytes) -> CleanRecord | None:
        """The record, or None for one that is torn, damaged or not ours."""
        fields = unseal(MAGIC, 6, raw)
        if fields is None:
            return None
        try:
            dev, ino, size, mtime_ns, ctime_ns = (int(x) for x in fields[:5])
            return cls(dev, ino, size, mtime_ns, ctime_ns, float(fields[5]))
        except ValueError:
            return None


def take_record(db: str | Path, trust: bool = False) -> CleanRecord | None:
    """Read and delete ``<db>.clean``: None when there is none or it is not a record.
    A symlink, or a file another user owns (without ``trust``), raises PrivateError."""
    path = clean_path(db)
    try:
        fd = open_beside(path, os.O_RDONLY, "clean-close record", trust=trust)
    except FileNotFoundError:
        return None
    try:
        raw = os.pread(fd, RECORD_MAX + 1, 0)
    except OSError:
        raw = b""
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return CleanRecord.decode(raw) if len(raw) <= RECORD_MAX else None


def still_clean(db: str | Path, record: CleanRecord | None, now: float | None = None) -> bool:
    """The file is as the record's clean close left it, with no WAL content beside it,
    and the check that passed is younger than :data:`CLEAN_CHECK_MAX_AGE_S`."""
    if record is None:
        return False
    age = (time.time() if now is None else now) - record.checked_at
    if not 0 <= age <= CLEAN_CHECK_MAX_AGE_S or file_bytes(Path(f"{db}-wal")) > 0:
        return False
    try:
        st = os.stat(db)
    except OSError:
        return False
    return CleanRecord.of(st, record.checked_at) == record


def leave_record(db: str | Path, checked_at: float | None) -> None:
    """After a clean close: record the file as it is now, its mtime set back by a
    nanosecond (by its granularity, on a coarser file system) first, so that a write in
    the same clock tick changes it. Nothing when no check has passed, another connection
    keeps WAL content (its close leaves the record), or the mtime cannot be set."""
    if checked_at is None or file_bytes(Path(f"{db}-wal")) > 0:
        return
    with contextlib.suppress(OSError, PrivateError):  # no record costs only a check at the next open
        st = os.stat(db)
        os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns - 1))
        # No fsync: a record a power loss tears or loses fails its CRC or is missing, and the
        # next open checks; the database itself was synced by its close.
        write_private(clean_path(db), CleanRecord.of(os.stat(db), checked_at).encode(), sync=False)


async def check_at_open(
    path: str, record: CleanRecord | None, integrity: Callable[[], Awaitable[list[tuple[str, str]]]]
) -> tuple[float | None, str | None]:
    """A writer's check of the file at open: ``quick_check`` where it is cheap (up to
    :data:`QUICK_CHECK_MAX_BYTES`) unless :func:`still_clean`. Returns when a check
    last passed (None: none known) and the metrics table's problem, if any; damage
    elsewhere is a StoreError (nothing changed)."""
    if file_bytes(Path(path)) > QUICK_CHECK_MAX_BYTES:
        return None, None
    if record is not None and still_clean(path, record):
        return record.checked_at, None
    started = time.time()
    found = await integrity()
    bad = [(t, m) for t, m in found if t not in METRIC_TABLES]
    if bad:
        raise StoreError(
            f"{path}: the database is damaged: table {bad[0][0]}: {bad[0][1]}. Nothing was changed; "
            f"`opsdeck verify --db {path}` reports the damage; {repair_hint(path)}"
        )
    if found:
        problem = (
            "the metrics table is damaged (SQLite's quick_check); gauges show no samples from the store "
            f"where it is unreadable: `opsdeck verify --db {path}` names the problem"
        )
        return None, problem
    return started, None

"""A task's output: every byte to a per-task file (rotated), capped lines to the console.

The agent host reads a task's stdout/stderr in chunks (no line-length limit to trip
over), appends it to ``<dir>/<task>.<attempt>.log`` (created with its first byte;
renamed to ``.log.1`` when it reaches :data:`FILE_MAX` bytes; one older part kept),
and splits it into lines for the report: a line is cut to :data:`LINE_MAX` characters
with a note of its full size, and at most :data:`REPORT_BYTES` of lines go out per
heartbeat; what does not fit is summarised (how many lines and bytes) with the file's
path. So the event log gets a bounded trickle and nothing is lost: the full output is
in the file (a run that printed nothing has none).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from itertools import islice
from pathlib import Path

LINE_MAX = 4096
"""Characters of one output line that reach the console and the log."""
REPORT_BYTES = 16 * 1024
"""Characters of output lines per heartbeat; more is summarised."""
FILE_MAX = 8 * 1024 * 1024
"""Bytes of one output file before it is rotated (the file and one older part are kept)."""
FILES_KEEP = 64
"""Output files kept per agent directory (the oldest are removed)."""
PENDING_MAX = LINE_MAX * 4
"""Bytes of an unfinished line held while waiting for its newline."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_name(task: str, attempt: int) -> str:
    """The name of a run's output file in its agent's directory."""
    return f"{_UNSAFE.sub('_', task)[:120]}.{attempt}.log"


def output_path(directory: Path, task: str, attempt: int) -> Path:
    return directory / output_name(task, attempt)


def _create(path: str) -> int:
    """The output file, new and empty, 0600; a symlink planted at its name is an error."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


class TaskOutput:
    """One run's output: the file, the line splitter and the per-report budget.

    The file is created with the first bytes the task prints: a run that prints
    nothing leaves no file (and costs no ``open``, ``close`` or removal of an older
    file to make room for it)."""

    def __init__(self, path: str | None, files: OutputFiles | None = None) -> None:
        self.path: str | None = path
        """Where the output goes (a string: a run's start makes no Path objects); None
        without a file, or once it could not be created."""
        self._files = files
        """The agent's directory, told of the file when it is created (its keep)."""
        self._fd: int | None = None
        self._made = False
        """The file was created."""
        self._closed = False
        """The run's output ended, or the file failed: nothing more is written."""
        self._written = 0
        self.error: str | None = None
        self._pending = bytearray()
        self._pending_bytes = 0  # the whole unfinished line's size, also past what is held
        self.bytes_total = 0
        self.lines_total = 0
        self._unsent_lines = 0
        self._unsent_bytes = 0
        self._budget = REPORT_BYTES

    @property
    def file(self) -> str | None:
        """The file holding the output, once the task printed something into it."""
        return self.path if self._made else None

    # -- the file ------------------------------------------------------------------
    def _open(self, path: str) -> None:
        try:
            try:
                self._fd = _create(path)
            except FileNotFoundError:  # its directory first (once per agent, or after a cleanup)
                Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._fd = _create(path)
        except OSError as exc:
            self.error = f"cannot write the output file {path}: {exc.strerror}"
            self.path = None
            return
        self._made = True
        if self._files is not None:
            self._files.created(os.path.basename(path))

    def _write(self, data: bytes) -> None:
        path = self.path
        if path is None:
            return
        if self._fd is None:
            if self._closed or self._made:
                return
            self._open(path)
            if self._fd is None:
                return
        try:
            if self._written + len(data) > FILE_MAX and self._written > 0:
                fd, self._fd = self._fd, None  # closed here once, never again by number
                os.close(fd)
                os.replace(path, path + ".1")
                self._fd = _create(path)
                self._written = 0
            os.write(self._fd, data)
            self._written += len(data)
        except OSError as exc:  # a full disk costs the file, not the task
            self.error = f"output file {path}: {exc.strerror}"
            self.close()

    def close(self) -> None:
        writing = self._made and not self._closed
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if writing and self._files is not None and self.path is not None:
            self._files.closed(os.path.basename(self.path))

    # -- lines ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[str]:
        """Take a chunk of output; the whole lines it completes, each capped."""
        self._write(data)
        self.bytes_total += len(data)
        lines: list[str] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            self._hold(data[start:nl])
            lines.append(self._take())
            start = nl + 1
        self._hold(data[start:])
        return lines

    def finish(self) -> list[str]:
        """At the end of the output: the last line if it had no newline."""
        self.close()
        return [self._take()] if self._pending_bytes else []

    def _hold(self, piece: bytes) -> None:
        room = PENDING_MAX - len(self._pending)
        if room > 0:
            self._pending += piece[:room]
        self._pending_bytes += len(piece)

    def _take(self) -> str:
        size = self._pending_bytes
        text = self._pending.decode("utf-8", "replace").rstrip("\r")
        self._pending.clear()
        self._pending_bytes = 0
        self.lines_total += 1
        if size > LINE_MAX or len(text) > LINE_MAX:
            where = f"; whole in {self.path}" if self.path is not None else ""
            text = f"{text[:LINE_MAX]}… [line of {size:,} bytes cut to {LINE_MAX:,} characters{where}]"
        return text

    # -- what a report carries --------------------------------------------------------------
    def admit(self, line: str) -> bool:
        """Whether a line fits this report's budget; counted as unsent if not."""
        if len(line) <= self._budget:
            self._budget -= len(line)
            return True
        self._unsent_lines += 1
        self._unsent_bytes += len(line)
        return False

    def summary(self) -> str | None:
        """The line standing for what did not fit since the last report (then a new budget)."""
        self._budget = REPORT_BYTES
        if not self._unsent_lines:
            return None
        n, b = self._unsent_lines, self._unsent_bytes
        self._unsent_lines = self._unsent_bytes = 0
        where = f"; full output in {self.path}" if self.path is not None else ""
        return f"[{n:,} more output lines ({b:,} characters) not shown{where}]"


class OutputFiles:
    """One agent's output directory: a file per run that printed something, the oldest
    removed past ``keep`` once no run writes it (a run replaced by the next one drains
    its output for up to ``OUTPUT_DRAIN_S`` after the next one started).

    The directory is listed once, the first time a run starts (files left by an earlier
    host of this agent, oldest first by modification time); after that the files this
    runner creates are added in order, so a run's start costs no listing and no stat."""

    def __init__(self, directory: Path, keep: int = FILES_KEEP) -> None:
        self._dir = os.fspath(directory)
        """The directory as a string: a run's start joins names to it (no Path objects)."""
        self.keep = keep
        self._names: OrderedDict[str, None] | None = None
        """The ``.log`` files kept, oldest first (None until the directory was listed)."""
        self._writing: set[str] = set()
        """Files a run still writes: never removed to make room."""

    def _listed(self) -> OrderedDict[str, None]:
        found: list[tuple[float, str]] = []
        with contextlib.suppress(OSError), os.scandir(self._dir) as it:
            for e in it:
                if e.name.endswith(".log") and e.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        found.append((e.stat(follow_symlinks=False).st_mtime, e.name))
        return OrderedDict((name, None) for _, name in sorted(found))

    def _remove(self, name: str) -> None:
        for q in (name, name + ".1"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir, q))

    def open(self, task: str, attempt: int) -> TaskOutput:
        """The run's output, its file made when the task first prints; an older file of
        the same name (this run started again) is removed now, with its rotated part:
        what is found under the name is this run's output or nothing."""
        if self._names is None:
            self._names = self._listed()
        name = output_name(task, attempt)
        if name in self._names:
            del self._names[name]
            self._remove(name)
        return TaskOutput(os.path.join(self._dir, name), self)

    def created(self, name: str) -> None:
        """A run's file was created: the newest; the oldest beyond ``keep`` that no run
        writes are removed (and their rotated parts)."""
        names = self._names
        if names is None:
            names = self._names = self._listed()
        names.pop(name, None)
        names[name] = None
        self._writing.add(name)
        self._trim(names)

    def closed(self, name: str) -> None:
        """A run's file was closed: it may now make room for newer ones."""
        self._writing.discard(name)
        if self._names is not None:
            self._trim(self._names)

    def _trim(self, names: OrderedDict[str, None]) -> None:
        over = len(names) - max(self.keep, 1)
        if over <= 0:
            return
        writing = self._writing
        # Only files older than the newest ``keep``: one being written stays over the count
        # until it closes (a host writes at most its current run's and a replaced one's).
        for old in [n for n in islice(names, over) if n not in writing]:
            del names[old]
            self._remove(old)

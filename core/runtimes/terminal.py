"""A task's screen: its pseudo-terminal output replayed through a terminal emulator.

A task with ``tty = true`` runs under a pseudo-terminal, and every byte it writes
(cursor moves, colours, redraws) lands in its output file. Replaying the file's
tail through pyte gives the screen as the task drew it: what the console's live
terminal shows. Only the last :data:`REPLAY_BYTES` are replayed, so the cost is
bounded whatever the task printed; a full-screen program redraws often enough that
the tail holds its current screen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPLAY_BYTES = 256 * 1024
COLS, ROWS = 100, 30
"""The pseudo-terminal's size the agent host gives a task (and the emulator replays at)."""


@dataclass(frozen=True)
class Screen:
    lines: list[str]
    cursor: tuple[int, int]
    """(row, column)."""
    replayed: int
    """Bytes of output the screen was rebuilt from."""


def render(data: bytes, cols: int = COLS, rows: int = ROWS) -> Screen:
    # The emulator (pyte and wcwidth: about 12 ms of CPU to import) loads where a screen is
    # drawn, the console; an agent host only takes COLS and ROWS from here.
    import pyte

    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    # A tail may start inside an escape sequence or a UTF-8 character: the first line
    # break is a safe place to start from when there is one.
    nl = data.find(b"\n")
    start = nl + 1 if 0 <= nl < 4096 and len(data) >= REPLAY_BYTES else 0
    stream.feed(data[start:].replace(b"\n", b"\r\n") if b"\r\n" not in data else data[start:])
    return Screen([line.rstrip() for line in screen.display], (screen.cursor.y, screen.cursor.x), len(data) - start)


def tail(path: Path, limit: int = REPLAY_BYTES) -> bytes:
    """The last ``limit`` bytes of ``path`` (opened without following a symlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 64 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def screen_of(path: Path, cols: int = COLS, rows: int = ROWS) -> Screen:
    return render(tail(path), cols, rows)

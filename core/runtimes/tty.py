"""A task under a pseudo-terminal: the agent host holds the master side.

The task gets the slave side as stdin, stdout and stderr and as its controlling
terminal (it is a session leader: ``TIOCSCTTY`` in the child), so programs that
check ``isatty`` or open ``/dev/tty`` (agent CLIs' interactive modes, pagers,
prompts) behave as in a terminal. The host reads the master (every byte goes to the
task's output file, where the console's live terminal replays it) and writes the
operator's input to it. Its size is fixed at :data:`terminal.COLS` x ``ROWS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios
from typing import Any

from .terminal import COLS, ROWS

WRITE_TIMEOUT_S = 10.0


def _become_controlling_terminal() -> None:  # pragma: no cover - runs in the child before exec
    """The pty is the task's controlling terminal, and a Ctrl-C typed to it interrupts the
    task: SIGINT at its default and not blocked (the agent host ignores it, a Ray async
    actor's thread blocks it, and both survive exec)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class TaskTerminal:
    """One pty pair: the slave for the child, the master for the host."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.slave_name = os.ttyname(self.slave)
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        os.set_blocking(self.master, False)
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.BaseTransport | None = None

    def spawn_args(self) -> dict[str, Any]:
        """Keyword arguments for ``create_subprocess_*``: the slave everywhere, a controlling tty."""
        return {
            "stdin": self.slave,
            "stdout": self.slave,
            "stderr": self.slave,
            "preexec_fn": _become_controlling_terminal,
        }

    def started(self) -> None:
        """The child has the slave now: the host's copy is closed, so the master reads
        end-of-output (EIO) once every process of the task has let go of it."""
        with contextlib.suppress(OSError):
            os.close(self.slave)
        self.slave = -1

    async def write(self, data: bytes) -> int:
        """Write all of ``data`` to the master (the task reads it as typed input)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_TIMEOUT_S
        done = 0
        while done < len(data):
            try:
                done += os.write(self.master, data[done:])
            except BlockingIOError:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"the terminal took {done} of {len(data)} bytes in {WRITE_TIMEOUT_S:g}s"
                    ) from None
                await asyncio.sleep(0.02)
        return done

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1

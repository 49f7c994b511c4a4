"""SIGHUP stops the console's host and ends the process, as closing its terminal should.

Closing the terminal (a tmux session killed, an ssh link dropped) sends SIGHUP, whose
default action ends the process at once: a console hosting real agents left its agent
hosts running (they are in sessions of their own). Handled, the hangup closes the host
(which stops its agents) and exits. The terminal is gone, so its descriptors are first
pointed at /dev/null: Textual's writer thread would otherwise die on EIO and the next
frames would block the event loop on its full queue (seen in tmux: the console hung).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any


def detach_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: writes and reads neither fail nor block."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        os.close(null)


def quit_on_hangup(shutdown: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """On SIGHUP: detach from the terminal, run ``shutdown`` (the host closes, its agents
    stop), then exit with status 129 (128 + SIGHUP). False where no handler can be
    installed (not the main thread, or a platform without SIGHUP)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    async def close() -> None:
        try:
            await shutdown()
        finally:
            os._exit(128 + hup)  # nothing to restore on a terminal that is gone

    def hangup() -> None:
        detach_terminal()
        task = loop.create_task(close())
        running.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(running.discard)

    loop.add_signal_handler(hup, hangup)
    return True

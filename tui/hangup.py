"""SIGHUP quits the console as ``q`` does.

Closing the terminal (a tmux session killed, an ssh link dropped) sends SIGHUP, whose
default action ends the process at once: a console hosting real agents would leave its
agent hosts running (they are in sessions of their own). Handled, the hangup runs the
console's quit: the host it runs closes and stops its agents.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any


def quit_on_hangup(quit_action: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run ``quit_action`` on SIGHUP; False where no handler can be installed (not the
    main thread, or a platform without SIGHUP)."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[None]] = set()

    def hangup() -> None:
        task = loop.create_task(quit_action())
        running.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(running.discard)

    loop.add_signal_handler(hup, hangup)
    return True

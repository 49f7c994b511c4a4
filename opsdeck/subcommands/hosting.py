"""What the verbs that host a database share (serve, run, demo): stopping on a signal,
saying where the host listens and what it waits for while it opens."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.host.host import Host


def announce(host: Host, verb: str = "serve") -> None:
    """Say where the host listens (stderr, one line each), so clients can be pointed at it."""
    from core.host.paths import token_path

    def notice(text: str) -> None:  # storage trouble and its end, as it happens
        print(f"# opsdeck {verb}: {text}", file=sys.stderr, flush=True)

    host.storage.notify = notice
    st = host.status()
    print(f"# opsdeck {verb}: pid {st['pid']} hosts {host.db} ({host.kind})", file=sys.stderr)
    if st["socket"] is not None:
        print(f"# listening on unix:{st['socket']}", file=sys.stderr)
    if st["listen"]:
        print(
            f"# listening on http://{st['listen']} (commands need the bearer token in {token_path(host.db)})",
            file=sys.stderr,
        )
    print(f"# attach: opsdeck console --db {host.db}   |   opsdeck exec --db {host.db} '/host status'", file=sys.stderr)
    sys.stderr.flush()


def say_proving(verb: str) -> None:
    """While the host opens, say on stderr when it proves the last run's agent hosts
    (up to a handshake's time of silence otherwise) and how many proved themselves."""
    from core.runtimes.opening import PROVING, Proving

    def said(proving: Proving) -> None:
        print(f"# opsdeck {verb}: {proving.words()}", file=sys.stderr, flush=True)

    PROVING.set(said)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM/SIGHUP (SIGHUP: the terminal closed; the host stops
    its agents as on a quit instead of dying and leaving them running). Signals reach only
    the main thread: a verb run from another thread (a test harness calling ``main``) gets
    no handlers, not an error."""
    stop = asyncio.Event()
    if threading.current_thread() is not threading.main_thread():
        return stop
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    return stop

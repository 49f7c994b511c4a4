"""Starting the console: the only place the command line reaches into ``tui``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core.config import Config


def run_console(
    db: Path,
    config: Config,
    demo: bool = False,
    seed: int = 0,
    speed: float | None = None,
    readonly: bool = False,
    session: Callable[[], Awaitable[Any]] | None = None,
) -> int:
    """``session``: an async factory returning ``(engine, runtime)`` on a real runtime
    (``opsdeck run``); the app awaits it in its own loop, flushes instead of advancing
    a virtual clock, and awaits ``runtime.shutdown()`` before closing the engine."""
    try:
        from tui.app import OpsdeckApp
    except ImportError:
        print("opsdeck: the console is not built yet; use --headless", file=sys.stderr)
        return 2
    if session is not None:
        try:
            app = OpsdeckApp(db=db, config=config, readonly=readonly, session=session)
        except TypeError:
            print("opsdeck: this console cannot drive real agents yet; use --headless", file=sys.stderr)
            return 2
        app.run()
        return app.return_code or 0
    app = OpsdeckApp(db=db, config=config, demo=demo, seed=seed, speed=speed, readonly=readonly)
    app.run()
    return app.return_code or 0

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
        app = local_console(db, config, session)
        app.run()
        return app.return_code or 0
    app = OpsdeckApp(db=db, config=config, demo=demo, seed=seed, speed=speed, readonly=readonly)
    app.run()
    return app.return_code or 0


def local_console(db: Path, config: Config, session: Callable[[], Awaitable[Any]]) -> Any:
    """The console on real agents (``opsdeck run``): the same app, driven by the wall clock.

    The session (engine + local runtime) is opened in the app's own event loop, since
    the runtime's connections and samplers live there; each tick flushes the log and
    pumps the incident pipeline instead of advancing a virtual clock; quitting stops
    every agent process before the store closes.
    """
    from tui.app import OpsdeckApp

    import tui.app

    css = OpsdeckApp.CSS_PATH
    if isinstance(css, str) and not Path(css).is_absolute():
        css = str(Path(tui.app.__file__).parent / css)  # relative paths resolve against the subclass's module

    class LocalConsole(OpsdeckApp):  # type: ignore[misc, valid-type]
        CSS_PATH = css

        def __init__(self) -> None:
            super().__init__(db=db, config=config, demo=False, speed=1.0)
            self.runtime: Any = None

        def _open_engine(self) -> None:  # runs in a worker thread, like the simulated one
            try:
                engine, runtime = self.call_from_thread(session)
            except Exception as exc:  # noqa: BLE001 - shown in the console, not a traceback
                self.call_from_thread(self._engine_failed, str(exc))
                return
            self.runtime = runtime
            self.call_from_thread(self._engine_opened, engine)

        async def step(self, seconds: float) -> None:
            eng = self.engine
            if eng is None:
                return
            await eng.flush()
            await eng.maintain()
            if self.manager is not None:
                await self.manager.pump()

        async def shutdown(self) -> None:
            runtime, self.runtime = self.runtime, None
            if runtime is not None:
                await runtime.shutdown()
            await super().shutdown()

    return LocalConsole()

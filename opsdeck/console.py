"""Starting the console: the only place the command line reaches into ``tui``."""

from __future__ import annotations

import sys
from pathlib import Path

from core.config import Config


def run_console(db: Path, config: Config, demo: bool = False, seed: int = 0, speed: float | None = None, readonly: bool = False) -> int:
    try:
        from tui.app import OpsdeckApp
    except ImportError:
        print("opsdeck: the console is not built yet; use --headless", file=sys.stderr)
        return 2
    app = OpsdeckApp(db=db, config=config, demo=demo, seed=seed, speed=speed, readonly=readonly)
    app.run()
    return app.return_code or 0

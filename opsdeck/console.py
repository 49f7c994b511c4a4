"""Starting the console: the only place the command line reaches into ``tui``."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.host.errors import HostError
from core.host.lease import current_holder
from core.host.paths import check_database

if TYPE_CHECKING:
    from core.config import Config


def run_console(
    db: Path,
    config: Config,
    demo: bool = False,
    seed: int = 0,
    speed: float | None = None,
    readonly: bool = False,
    host_factory: Callable[[], Awaitable[Any]] | None = None,
    create: bool = True,
    listen: str | None = None,
) -> int:
    """The console on ``db``: attached to its live host if one holds it (read-only
    always attaches), else hosting it in this process (embedded): on the simulated
    runtime, or on what ``host_factory`` opens (``opsdeck run``: real agents)."""
    from tui.app import OpsdeckApp

    if listen:
        from core.host.server import parse_listen

        try:
            parse_listen(listen)
        except ValueError as exc:
            print(f"opsdeck: {exc}", file=sys.stderr)
            return 2
    live = current_holder(db) is not None
    if not live and readonly and not Path(db).is_file():
        print(f"opsdeck: no such database: {db} (a read-only console watches an existing one)", file=sys.stderr)
        return 2
    if not live:
        try:
            check_database(db, create=create and not readonly)
        except HostError as exc:
            print(f"opsdeck: {exc}", file=sys.stderr)
            return 2
    if live and host_factory is not None:
        holder = current_holder(db)
        who = holder.describe() if holder is not None else "another process"
        print(f"opsdeck: {db} is run by {who}; attach with: opsdeck console --db {db}", file=sys.stderr)
        return 2
    app = OpsdeckApp(
        db=db,
        config=config,
        demo=demo,
        seed=seed,
        speed=speed,
        readonly=readonly,
        host_factory=host_factory,
        create=create,
        listen=listen,
    )
    app.run()
    if app.close_error is not None:
        print(f"opsdeck: {app.close_error}", file=sys.stderr)
        return app.return_code or 1
    return app.return_code or 0

"""What a host reports about itself: ``GET /v1/health`` and ``/host status``, and its
drill's state as a setting in the log (``drill``), so every console, attached or
embedded, shows it: armed, injected, then ended or cancelled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..engine import Engine
    from ..incidents.drills import Drill
    from .control import Advance
    from .door import Endpoint
    from .storage import StorageWatch


class Reporting(Protocol):
    """What the report reads of a host (:class:`core.host.host.Host`)."""

    engine: Engine
    kind: str
    db: Path
    speed: float
    clock_running: bool
    started_at: float
    endpoint: Endpoint

    drill: Drill | None
    advancing: Advance | None
    storage: StorageWatch

    @property
    def virtual(self) -> bool: ...

    @property
    def socket_path(self) -> Path: ...

    def held_by(self) -> list[str]: ...


def status(host: Reporting, uptime: float) -> dict[str, Any]:
    """The host's pid, runtime, database, clock, pacing, endpoint, drill, workflows and storage."""
    eng = host.engine
    drill = host.drill
    return {
        "pid": os.getpid(),
        "runtime": host.kind,
        "db": str(host.db.absolute()),
        "seq": eng.state.seq,
        "clock": round(eng.clock.now(), 3),
        "simulated": host.virtual,
        "uptime": round(uptime, 3),
        "started_at": host.started_at,
        "speed": host.speed,
        "clock_running": host.clock_running,
        "held_by": host.held_by(),
        "socket": str(host.socket_path) if host.endpoint.serving else None,
        "listen": host.endpoint.listen,
        "drill": None
        if drill is None
        else {"name": drill.name, "inject_at": drill.inject_at, "injected": drill.injected, "done": drill.done},
        "workflows": eng.summary()["workflows"],
        "advance": None if host.advancing is None else host.advancing.report(eng.clock.now()),
        "storage": host.storage.status(
            eng.store.metrics_problem if eng.store is not None else None,
            eng.store.anchor_error if eng.store is not None else None,
            eng.opening.unrecorded,
        ),
    }


def note_drill(engine: Engine, d: Drill | None, actor: str = "drill") -> None:
    """Record the drill's state when it changed (no event when the setting says it already)."""
    if d is None:
        return
    status = "cancelled" if d.cancelled else "ended" if d.done else "injected" if d.injected else "armed"
    rec = engine.state.settings.get("drill")
    if isinstance(rec, dict) and rec.get("name") == d.name and rec.get("status") == status:
        return
    engine.set_setting(
        "drill",
        {
            "name": d.name,
            "status": status,
            "inject_at": round(d.inject_at, 3),
            "injected_at": None if d.injected_at is None else round(d.injected_at, 3),
            "since": round(engine.clock.now(), 3),
            "outcome": d.outcome,
        },
        actor=actor,
    )

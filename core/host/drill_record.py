"""A drill's state as a setting in the log (``drill``), so every console, attached or
embedded, shows it: armed, injected, then ended or cancelled."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine import Engine
    from ..incidents.drills import Drill


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

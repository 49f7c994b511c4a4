"""The event types the command language adds, and how they fold into the state.

Imported at the bottom of :mod:`core.projection` so that a replay of the log (or a
checkpoint load followed by replay) rebuilds staged resumptions and learned lessons
exactly as they were.
"""

from __future__ import annotations

from typing import Any

from ..events import Event
from ..projection import State, reducer

LESSONS_KEPT = 20


@reducer("RESUMPTION_CREATED")
def _resumption_created(s: State, ev: Event) -> None:
    d = ev.data
    s.resumptions[d["id"]] = {
        "id": d["id"],
        "status": "active",
        "created_at": ev.ts,
        "safe_pct": d["safe_pct"],
        "hold_s": d["hold_s"],
        "checkpoint": d.get("checkpoint"),
        "stages": d["stages"],
        "steps": d["steps"],
        "next_step": 0,
        "applied": [],
        "finished_at": None,
        "reason": None,
    }


@reducer("RESUMPTION_STEP_APPLIED")
def _resumption_step(s: State, ev: Event) -> None:
    r = s.resumptions[ev.data["id"]]
    r["next_step"] = ev.data["step"] + 1
    r["applied"].append({"step": ev.data["step"], "at": ev.ts, "utilisation": ev.data.get("utilisation", {})})


@reducer("RESUMPTION_HELD")
def _resumption_held(s: State, ev: Event) -> None:
    s.resumptions[ev.data["id"]]["held"] = bool(ev.data["held"])


@reducer("RESUMPTION_COMPLETED", "RESUMPTION_ABORTED")
def _resumption_done(s: State, ev: Event) -> None:
    r = s.resumptions[ev.data["id"]]
    r["status"] = "completed" if ev.type == "RESUMPTION_COMPLETED" else "aborted"
    r["finished_at"] = ev.ts
    r["reason"] = ev.data.get("reason")


@reducer("LEARNING_RECORDED")
def _learning(s: State, ev: Event) -> None:
    lessons: list[dict[str, Any]] = s.learning.setdefault("lessons", [])
    lessons.append({"at": ev.ts, **ev.data})
    del lessons[:-LESSONS_KEPT]
    policy = ev.data.get("policy")
    if isinstance(policy, dict):
        s.learning.setdefault("policy", {}).update(policy)


@reducer("CHECKPOINTS_PRUNED")
def _checkpoints_pruned(s: State, ev: Event) -> None:
    for cp_id in ev.data.get("ids", []):
        s.checkpoints.pop(int(cp_id), None)

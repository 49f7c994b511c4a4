"""Monitoring settings: what an operator asked to watch, for how long, how closely.

A monitoring operation records its settings in the state (``SETTING_CHANGED``
under ``monitoring.<name>``) with the window it covers, and returns the baseline
measured now, so a later comparison has something real to compare against.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .registry import Outcome

SENSITIVITY = {"low": 1.5, "medium": 1.0, "high": 0.75}
"""Multiplier of the configured warning thresholds: high sensitivity alerts earlier."""


def baseline(ctx: Context) -> dict[str, Any]:
    eng = ctx.engine
    tel = eng.telemetry
    u = eng.utilisation()
    return {
        "cpu_pct": u["cpu"],
        "memory_pct": u["memory"],
        "agents_pct": u["agents"],
        "throughput_per_min": tel.get("throughput_per_min").last(),
        "response_time_s": tel.get("response_time").last(),
        "efficiency": tel.get("efficiency").last(),
        "samples": len(tel.get("cpu_pct").points),
    }


def thresholds_for(ctx: Context, sensitivity: str) -> dict[str, float]:
    th = ctx.engine.config.thresholds
    f = SENSITIVITY[sensitivity]
    return {"cpu_warning_pct": round(min(99.0, th.cpu_warning * f), 2),
            "memory_warning_pct": round(min(99.0, th.memory_warning * f), 2)}


def configure(ctx: Context, name: str, settings: dict[str, Any], duration_s: float | None = None) -> Outcome:
    """Record monitoring settings for ``name`` and report the baseline they start from."""
    now = ctx.now
    value = {
        **settings,
        "since": round(now, 3),
        "until": round(now + duration_s, 3) if duration_s else None,
        "by": ctx.actor,
        "baseline": baseline(ctx),
    }
    key = f"monitoring.{name}"
    previous = ctx.state.settings.get(key)
    ctx.engine.set_setting(key, value, actor=ctx.actor)
    summary = f"{name} monitoring on" + (f" for {duration_s / 60:g} min" if duration_s else "") + \
        f"; baseline cpu {value['baseline']['cpu_pct']:.1f}%, memory {value['baseline']['memory_pct']:.1f}%"
    return Outcome({"setting": key, "monitoring": value, "replaced": previous is not None}, summary,
                   ["/performance-monitor live-metrics", "/performance-monitor alerts"])

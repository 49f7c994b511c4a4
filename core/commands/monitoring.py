"""Monitoring settings: what an operator asked to watch, for how long, how closely.

A monitoring operation records its settings in the state (``SETTING_CHANGED``
under ``monitoring.<name>``) with the window it covers, and returns the baseline
measured now, so a later comparison has something real to compare against. While
the window is open, :func:`watch` (on the engine's sample hook) raises an alert at
each threshold crossing; when it closes, it reports the peaks.
"""

from __future__ import annotations

from typing import Any

from ..event_types import AGENT_BACKOFF, AGENT_PERFORMANCE_ALERT, MONITORING_WINDOW_CLOSED, RESOURCE_THRESHOLD
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
    return {
        "cpu_warning_pct": round(min(99.0, th.cpu_warning * f), 2),
        "memory_warning_pct": round(min(99.0, th.memory_warning * f), 2),
    }


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
    summary = (
        f"{name} monitoring on"
        + (f" for {duration_s / 60:g} min" if duration_s else "")
        + f"; baseline cpu {value['baseline']['cpu_pct']:.1f}%, memory {value['baseline']['memory_pct']:.1f}%"
    )
    return Outcome(
        {"setting": key, "monitoring": value, "replaced": previous is not None},
        summary,
        ["/performance-monitor live-metrics", "/performance-monitor alerts"],
    )


WATCHED = (("cpu", "cpu_pct", "cpu_warning_pct"), ("memory", "memory_pct", "memory_warning_pct"))

TRIGGER_DEFAULTS = {
    "performance_degradation_pct": "degradation_trigger_pct",
    "resource_utilization_above_pct": "utilisation_trigger_pct",
    "response_time_degradation_pct": "response_time_trigger_pct",
}


def trigger_pct(engine: Any, name: str) -> float:
    """An auto-optimisation trigger in force: what ``/performance-monitor
    enable-continuous-learning`` set, else the ``[performance]`` config. The
    degradation detector and the utilisation watch read it here."""
    cfg = engine.state.settings.get("auto_optimization")
    if isinstance(cfg, dict) and isinstance(cfg.get("triggers"), dict) and cfg["triggers"].get(name) is not None:
        return float(cfg["triggers"][name])
    return float(getattr(engine.config.performance, TRIGGER_DEFAULTS[name]))


ADAPTIVE_LOOKBACK_S = 1800.0
ADAPTIVE_BACKOFF_S = 3600.0


def _adaptive_tuning(engine: Any, now: float, last: dict[str, float]) -> None:
    """``real-time-optimization-monitoring`` with adaptive tuning: at each granularity
    tick of its window, an agent whose pace fell behind the others (``pace.bottleneck``)
    is taken out of dispatch for an hour and its task moves, with its context."""
    cfg = engine.state.settings.get("monitoring.optimization")
    if not isinstance(cfg, dict) or cfg.get("closed") or not cfg.get("adaptive_tuning"):
        return
    every = float(cfg.get("granularity_s") or 30.0)
    if now - last.get("optimization", float("-inf")) < every:
        return
    last["optimization"] = now
    from .pace import bottleneck

    bn = bottleneck(engine, now - ADAPTIVE_LOOKBACK_S)
    for a in bn["slow"]:
        ag = engine.state.agents.get(a)
        if (
            ag is None
            or (ag.backoff_until is not None and ag.backoff_until > now)
            or ag.status.value not in ("idle", "busy")
        ):
            continue
        engine.emit(
            AGENT_BACKOFF,
            "resource",
            "agents",
            {
                "agent": a,
                "until": round(now + ADAPTIVE_BACKOFF_S, 3),
                "reason": "adaptive_tuning",
                "pace": bn["pace"][a],
                "median_pace": bn["median_pace"],
            },
            actor="monitor",
        )
        if ag.current_task:
            engine.release_task(ag.current_task, reason="agent_slow", actor="monitor")
    engine.request_dispatch()


def _watch_late_heartbeats(engine: Any, now: float, over: dict[tuple[str, str], bool]) -> None:
    """``network-resilience-monitoring`` with failure prediction: an agent whose
    heartbeat is late (silent longer than one interval, not yet unreachable) raises
    AGENT_PERFORMANCE_ALERT once per lateness."""
    cfg = engine.state.settings.get("monitoring.network")
    if not isinstance(cfg, dict) or cfg.get("closed") or not cfg.get("failure_prediction"):
        return
    hb = engine.config.intervals.heartbeat_s
    for a in sorted(engine.state.agents.values(), key=lambda x: x.id):
        if a.status.value not in ("idle", "busy", "paused"):
            over.pop(("network", a.id), None)
            continue
        silent = now - engine.telemetry.liveness.get(a.id, now)
        late = silent > hb * 1.5
        if late and not over.get(("network", a.id), False):
            engine.emit(
                AGENT_PERFORMANCE_ALERT,
                "agent",
                "health",
                {
                    "agent": a.id,
                    "silent_s": round(silent, 1),
                    "monitor": "network",
                    "prediction": "heartbeat late: may become unreachable",
                },
                actor="monitor",
            )
        over[("network", a.id)] = late


def _watch_utilisation_trigger(engine: Any, now: float, over: dict[tuple[str, str], bool]) -> None:
    """With continuous learning on, CPU or memory above the utilisation trigger raises
    RESOURCE_THRESHOLD (once per crossing)."""
    if not isinstance(engine.state.settings.get("auto_optimization"), dict):
        return
    limit = trigger_pct(engine, "resource_utilization_above_pct")
    for metric, series, _ in WATCHED:
        alert_on_crossing(engine, over, "auto_optimization", "auto_optimization", metric, series, limit)


def alert_on_crossing(
    engine: Any, over: dict[tuple[str, str], bool], mark: str, monitor: str, metric: str, series: str, limit: float
) -> None:
    """RESOURCE_THRESHOLD when the last sample of ``series`` is above ``limit`` and the one
    before was not: once per crossing (``over`` remembers, by ``(mark, metric)``)."""
    pts = engine.telemetry.get(series).points
    if not pts:
        return
    value = pts[-1][1]
    is_over = value > limit
    if is_over and not over.get((mark, metric), False):
        engine.emit(
            RESOURCE_THRESHOLD,
            "resource",
            "monitoring",
            {
                "monitor": monitor,
                "metric": metric,
                "value": value,
                "threshold": limit,
                "severity": "high" if value >= engine.config.thresholds.exhaustion else "medium",
            },
            actor="monitor",
        )
    over[(mark, metric)] = is_over


class Watch:
    """The command language's watch on one engine, run on each system sample, with
    what it remembers between samples: which thresholds are crossed (an alert is
    raised once per crossing) and when adaptive tuning last acted."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.over: dict[tuple[str, str], bool] = {}
        self.adaptive_last: dict[str, float] = {}

    def __call__(self, now: float) -> None:
        watch(self.engine, now, self.over, self.adaptive_last)


def watch(engine: Any, now: float, over: dict[tuple[str, str], bool], adaptive_last: dict[str, float]) -> None:
    """Run on each system sample: a monitor with thresholds raises RESOURCE_THRESHOLD
    when a metric crosses its threshold upward (once per crossing), and when its
    window ends MONITORING_WINDOW_CLOSED reports the peaks against the baseline."""
    if engine.readonly:
        return
    tel = engine.telemetry
    _watch_utilisation_trigger(engine, now, over)
    _watch_late_heartbeats(engine, now, over)
    _adaptive_tuning(engine, now, adaptive_last)
    for key in sorted(k for k in engine.state.settings if k.startswith("monitoring.")):
        cfg = engine.state.settings[key]
        if not isinstance(cfg, dict) or cfg.get("closed"):
            continue
        until = cfg.get("until")
        name = key.split(".", 1)[1]
        if until is not None and now >= until:
            peaks = {}
            for metric, series, _ in WATCHED:
                vals = [v for _, v in tel.get(series).since(cfg.get("since", 0.0))]
                peaks[metric] = {
                    "peak": max(vals) if vals else None,
                    "mean": round(sum(vals) / len(vals), 2) if vals else None,
                    "baseline": cfg.get("baseline", {}).get(series),
                    "samples": len(vals),
                }
            engine.emit(
                MONITORING_WINDOW_CLOSED,
                "performance",
                "monitoring",
                {"monitor": name, "since": cfg.get("since"), "until": until, "metrics": peaks},
                actor="monitor",
            )
            engine.set_setting(key, {**cfg, "closed": True}, actor="monitor")
            continue
        th = cfg.get("thresholds")
        if not isinstance(th, dict):
            continue
        for metric, series, limit_key in WATCHED:
            limit = th.get(limit_key)
            if limit is not None:
                alert_on_crossing(engine, over, key, name, metric, series, limit)

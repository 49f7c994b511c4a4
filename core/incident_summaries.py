"""One-line summaries of what the incident pipeline writes: a detector's finding, a
playbook's announcement of its plan, a validation's conclusion. Each reads the event's
own data in words, with the basis of an estimate; a key it has no words for is shown
as key=value rather than hidden (see :mod:`core.event_summaries` for the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .event_summaries import default_summary
from .events import Event


def _words(value: Any) -> str:
    return str(value).replace("_", " ")


def _names(value: Any, most: int = 3) -> str:
    names = [str(v) for v in value] if isinstance(value, list) else []
    shown = ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
    return f"{len(names)} ({shown})" if names else "0"


def _utilisation(u: Any) -> str:
    if not isinstance(u, dict):
        return ""
    parts = [f"{k} {v:g}%" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in u.items()]
    return ", ".join(parts)


# How a detector's finding reads, key by key: what it found first, then its figures.
_FINDING_WORDS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("error_type", _words),
    ("failure_type", _words),
    ("alert_type", _words),
    ("system_utilization", _utilisation),
    ("failed_agents", lambda v: f"agents failed {_names(v)}"),
    ("affected_agents", lambda v: f"agents cut off {_names(v)}"),
    ("confidence", lambda v: f"confidence {v:.0%}" if isinstance(v, (int, float)) else ""),
    ("corruption_risk", lambda v: f"corruption risk {v}"),
    ("impact", lambda v: f"impact {_words(v)}"),
    ("coordination_impact", lambda v: f"coordination impact {_words(v)}"),
    ("affected_workflows", lambda v: f"workflows affected {_names(v)}"),
    ("immediate_action_required", lambda v: "immediate action required" if v is True else ""),
    ("auto_recovery", lambda v: f"recovery {_words(v)}"),
)
_FINDING_QUIET = {"incident_id", "severity", "affected_metrics", "degradation_rate"} | {k for k, _ in _FINDING_WORDS}


def _percent_words(value: Any) -> str:
    """``12_percent_over_21m`` -> ``12% over 21m``."""
    return _words(value).replace(" percent", "%")


def _degrading(d: dict[str, Any]) -> list[str]:
    """Which metrics degrade, and how fast when the finding says."""
    rate = f" by {_percent_words(d['degradation_rate'])}" if d.get("degradation_rate") else ""
    metrics = d.get("affected_metrics")
    names = ", ".join(map(str, metrics)) + " " if isinstance(metrics, list) and metrics else ""
    return [f"{names}degrading{rate}"] if names or rate else []


def finding(ev: Event) -> str:
    """A detector's finding in words ("INC-0001: cpu and memory overload; cpu 100%, ...");
    a key this table does not know is shown as key=value rather than hidden."""
    d = ev.data
    inc = f"{d['incident_id']}: " if d.get("incident_id") else ""
    parts = _degrading(d) + [text for key, say in _FINDING_WORDS if key in d and (text := say(d[key]))]
    rest = {k: v for k, v in d.items() if k not in _FINDING_QUIET}
    if rest:
        parts.append(default_summary(Event(ev.seq, ev.ts, ev.type, ev.component, ev.scope, rest, ev.actor)))
    return inc + ("; ".join(parts) if parts else ev.scope)


def _clause(basis: Any, most: int = 48) -> str:
    first = str(basis).split(";")[0].strip()
    return first if len(first) <= most else first[: most - 1] + "…"


_ESTIMATES = ("estimated_recovery_time", "estimated_time", "estimated_recovery", "implementation_time")


def plan_announcement(ev: Event) -> str:
    """A playbook's announcement of its plan: the strategy and the estimate with its basis."""
    d = ev.data
    head = " for ".join(str(d[k]) for k in ("plan_id", "incident_id") if d.get(k))
    parts = [_words(d["strategy"])] if d.get("strategy") else []
    if d.get("response_level"):
        parts.append(f"response level {d['response_level']}")
    est = next((k for k in _ESTIMATES if d.get(k)), None)
    if est is not None:
        basis = f" ({_clause(d['estimate_basis'])})" if d.get("estimate_basis") else ""
        parts.append(f"estimated {d[est]}{basis}")
    for key, label in (
        ("functionality_preserved", "functionality preserved"),
        ("optimization_potential", "potential"),
        ("risk_level", "risk"),
        ("data_loss_risk", "data loss risk"),
    ):
        if d.get(key):
            parts.append(f"{label} {_percent_words(d[key])}")
    if isinstance(d.get("recovery_confidence"), (int, float)):
        basis = f" ({_clause(d['confidence_basis'])})" if d.get("confidence_basis") else ""
        parts.append(f"confidence {d['recovery_confidence']:.0%}{basis}")
    if not parts:
        return default_summary(ev)
    return (f"{head}: " if head else "") + "; ".join(parts)


def plan_concluded(ev: Event) -> str:
    """A validation's conclusion: what it measured the plan to have recovered, and in what time."""
    d = ev.data
    parts: list[str] = []
    for key, label in (("workflows_recovered", "workflow(s) recovered"), ("tasks_resumed", "task(s) resumed")):
        if isinstance(d.get(key), int):
            parts.append(f"{d[key]} {label}")
    if isinstance(d.get("tasks_moved"), int):
        parts.append(f"{d['tasks_moved']} task(s) moved")
    if isinstance(d.get("restored_by_plan"), list):
        parts.append(f"restored {_names(d['restored_by_plan'])}")
    if d.get("data_integrity"):
        parts.append(f"data integrity {d['data_integrity']}")
    if d.get("improvement_achieved"):
        parts.append(f"improved {_percent_words(d['improvement_achieved'])}")
    if d.get("connectivity_restored"):
        parts.append(f"connectivity {_percent_words(d['connectivity_restored'])}")
    taken = d.get("recovery_time") or d.get("optimization_time")
    if taken:
        parts.append(f"in {taken} from the plan's first acting step")
    if d.get("stability"):
        parts.append(f"stability {d['stability']}")
    if not parts:
        return default_summary(ev)
    return (f"{d['incident_id']}: " if d.get("incident_id") else "") + "; ".join(parts)

"""One-line summaries of the usage events, for readable logs (from the data alone)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..events import Event
from .models import Budget


def _spend(d: Any) -> str:
    if not isinstance(d, dict):
        return "?"
    tokens = int(d.get("input_tokens") or 0) + int(d.get("output_tokens") or 0)
    return f"{tokens:,} tokens, ${float(d.get('cost_usd') or 0.0):.4f}"


def task_usage(ev: Event) -> str:
    d = ev.data
    return f"{d['task']} on {d['agent']} has used {_spend(d['spend'])} (attempt {d['attempt']})"


def lines_ignored(ev: Event) -> str:
    d = ev.data
    why = f": {d['reason']}" if d.get("reason") else ""
    return f"{d['task']}: {d['count']} usage line(s) could not be read and were ignored{why}"


def budget_set(ev: Event) -> str:
    d = ev.data
    if d.get("budget") is None:
        return f"{d['scope']} {d['name']}: budget removed"
    brief = Budget.model_validate(d["budget"]).brief()
    return f"{d['scope']} {d['name']}: budget {brief} (warning at {float(d.get('warn_share', 0.8)):.0%})"


def budget_reached(what: str) -> Callable[[Event], str]:
    def summary(ev: Event) -> str:
        d = ev.data
        return f"{d['scope']} {d['name']} {what}: {_spend(d.get('spend', {}))}, {float(d.get('share', 0)):.0%} of its budget"

    return summary


def pool_rate_limited(ev: Event) -> str:
    d = ev.data
    at = datetime.fromtimestamp(float(d["reset_at"]), UTC).strftime("%H:%M:%S")
    return f"pool {d['pool']} held until {at} UTC ({d['source']}: {d['reason']})"


def pool_hold_changed(ev: Event) -> str:
    d = ev.data
    if d.get("agents_allowed") is None:
        return f"pool {d['pool']}: rate-limit hold lifted"
    return f"pool {d['pool']}: {d['agents_allowed']} agent(s) may work while held"

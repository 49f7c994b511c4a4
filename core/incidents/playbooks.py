"""Playbooks: what every kind's playbook shares.

Each incident kind (``core.incidents.kinds``) computes a plan of slash commands from
the state. Nothing there is a template with fixed names: which workflows are paused,
reduced or guaranteed follows from their priority bands, what they hold now and
their critical paths; replacement agents follow the failed agents' pools and
specializations; expected improvements follow from the measured trend. The commands
use the seed's payload shapes so an operator can read and edit them. This module
holds the plan drafts, the command writer and the estimates from history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import Engine


@dataclass
class StepDraft:
    command: str
    title: str
    gate: str | None = None
    """A validation the executor must see pass after this step before continuing."""
    check: dict[str, Any] | None = None


@dataclass
class PlanDraft:
    title: str
    strategy: str
    steps: list[StepDraft]
    expected: dict[str, Any] = field(default_factory=dict)
    announce: tuple[str, str, str, dict[str, Any]] | None = None
    """The seed's strategy event (type, component, scope, data), emitted with the plan."""


def cmd(
    component: str, operation: str, *payloads: Any, flags: tuple[str, ...] = (), workflow: str | None = None
) -> str:
    """A slash command with JSON payloads in single quotes (JSON never holds one)."""
    parts = [f"/{component}"]
    if operation:
        parts.append(operation)
    if workflow:
        parts.append(workflow)
    for p in payloads:
        text = json.dumps(p, separators=(", ", ": "))
        if "'" in text:
            raise ValueError("a payload may not contain a single quote")
        parts.append(f"'{text}'")
    parts += [f"--{f}" for f in flags]
    return " ".join(parts)


def plan_duration(seconds: float) -> str:
    m = max(1, round(seconds / 60.0))
    return f"{m}m" if m < 120 else f"{round(m / 60)}h"


def past_recovery(engine: Engine, scenario: str) -> float | None:
    """Median measured recovery time of earlier resolved incidents of the scenario:
    once the fleet has history, estimates come from what actually happened."""
    times = _past_times(engine, scenario)
    if not times:
        return None
    m = len(times) // 2
    return times[m] if len(times) % 2 else (times[m - 1] + times[m]) / 2


def _past_times(engine: Engine, scenario: str) -> list[float]:
    return sorted(
        float(took)
        for i in engine.state.incidents.values()
        if i.scenario == scenario and i.status == "resolved" and (took := i.outcome.recovery_time_s) is not None
    )


def estimate(engine: Engine, scenario: str, model_s: float, model: str) -> tuple[float, str]:
    """An estimate and its basis: the median of earlier incidents of the same kind when
    there are any (the history in the state), else the model named, labelled so."""
    past = past_recovery(engine, scenario)
    if past is not None:
        return past, f"median of {len(_past_times(engine, scenario))} earlier {scenario} incident(s)"
    return model_s, f"no history; model: {model}"

"""Detectors: what every kind's detector shares.

A detector returns a :class:`Finding` (the seed's detection event with its fields,
the evidence behind it, the workflows it touches) or ``None``. Each incident kind
(``core.incidents.kinds``) holds its own; the incident manager hooks them with
``engine.on_sample`` and opens at most one incident per kind at a time. Every
number in a finding is measured from telemetry or the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models import WorkflowStatus

if TYPE_CHECKING:
    from ..engine import Engine


@dataclass
class Finding:
    scenario: str
    type: str
    component: str
    scope: str
    severity: str
    data: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    affected_workflows: list[str] = field(default_factory=list)
    onset: float | None = None
    """When the signal first crossed (an estimate of the fault's start)."""


def standing_reassignment(engine: Engine) -> bool:
    """The engine moves the work of unreachable agents by itself (a standing policy)."""
    cfg = engine.state.settings.get("monitoring.communication")
    return isinstance(cfg, dict) and not cfg.get("closed") and cfg.get("reassign_after_s") is not None


def active_workflows(engine: Engine) -> list[str]:
    """Running and paused workflows, highest priority first."""
    s = engine.state
    wfs = [w for w in s.workflows.values() if w.status in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)]
    wfs.sort(key=lambda w: (-w.priority, w.id))
    return [w.id for w in wfs]


class Detector:
    """Checked after every system sample (``check``); a detector that must read the
    store checks from the manager's pump instead (``due`` / ``check_async``)."""

    scenario = ""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, now: float) -> Finding | None:
        return None

    def due(self, now: float) -> bool:
        """An asynchronous check is due at this pump."""
        return False

    async def check_async(self, now: float) -> Finding | None:
        return None

    def subject(self, f: Finding) -> tuple[str, ...]:
        """What a finding is about: two findings of this kind with the same subject are
        the same fault (the manager holds a repeat of a failed incident's fault on it).
        By default the workflows it affects; a kind whose faults have their own names
        (agents, log rows, checkpoints) says so."""
        return tuple(sorted(f.affected_workflows))

    def reset(self) -> None:
        """Forget accumulated evidence (after an incident of this kind is resolved)."""

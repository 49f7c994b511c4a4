"""What the operator's keys and palette do, as slash commands on the one command path.

Every console action is ONE slash command sent through the console's link
(:mod:`core.host.link`) and recorded like any other (``COMMAND_EXECUTED``, actor
``operator``): pausing a workflow is ``/coordination-hub pause WF``, approving a
plan is ``/incident approve PLAN-0001``. This module only spells the commands; the
link sends them to the host, in this process or over its socket.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.commands.binding import Bound
    from core.commands.registry import OperationSpec

ACTOR = "operator"

WORKFLOW_OPERATIONS = {
    "pause_workflow": "/coordination-hub pause",
    "resume_workflow": "/coordination-hub resume",
    "start_workflow": "/coordination-hub start",
    "cancel_workflow": "/coordination-hub cancel",
}
PLAN_OPERATIONS = {"approve": "approve", "reject": "reject", "abort_plan": "abort"}


def registry() -> list[OperationSpec]:
    """Every operation of the command language (palette, completion)."""
    # the command language loads after the first frame (tui.link_open)
    from core.host.language import LANGUAGE as REGISTRY

    return list(REGISTRY)


def command_mutates(text: str) -> bool | None:
    """Whether a slash command changes state, from the registry (None: does not parse)."""
    # the command language loads after the first frame (tui.link_open)
    from core.commands.executor import resolve_spec
    from core.host.language import LANGUAGE as REGISTRY

    spec = resolve_spec(text, REGISTRY)
    return None if spec is None else bool(spec.mutates)


class CommandRefused(ValueError):
    """A command text the command language refuses: ``message`` as its parser or binder
    says it; ``column`` (1-based) where a syntax error is, None for an unknown operation
    or a payload its model refuses."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


def bind_command(text: str) -> Bound:
    """``text`` parsed and bound by the command language, the check the host makes when
    the command arrives; raises :class:`CommandRefused` saying why it would be refused."""
    # the command language loads after the first frame (tui.link_open)
    from core.commands.binding import bind
    from core.commands.grammar import CommandSyntaxError, parse
    from core.commands.responses import CommandError
    from core.host.language import LANGUAGE as REGISTRY

    try:
        return bind(parse(text), REGISTRY)
    except CommandSyntaxError as exc:
        raise CommandRefused(exc.message, exc.column) from None
    except CommandError as exc:
        raise CommandRefused(exc.message) from None


def drill_names(simulated: bool = True) -> list[str]:
    """The drills this runtime can run: all five on the simulated fleet, the live ones on real agents."""
    # the command language loads after the first frame (tui.link_open)
    from core.incidents.drills import LIVE_DRILLS
    from core.incidents.kinds import SCENARIOS

    return list(SCENARIOS) if simulated else list(LIVE_DRILLS)


def payload(data: object) -> str:
    """A JSON argument, quoted for the shell-style grammar whatever it contains."""
    return shlex.quote(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def workflow_command(action: str, workflow: str) -> str:
    return f"{WORKFLOW_OPERATIONS[action]} {workflow}"


def checkpoint_command(label: str = "operator") -> str:
    return f"/coordination-hub checkpoint {payload({'kind': 'manual', 'label': label})}"


def rollback_command(checkpoint: int) -> str:
    return f"/coordination-hub rollback {payload({'checkpoint': checkpoint})}"


def rollback_preview_command(checkpoint: int) -> str:
    return f"/workflow-recovery rollback-preview {payload({'checkpoint': checkpoint})}"


def plan_command(action: str, plan: str, reason: str = "") -> str:
    return f"/incident {PLAN_OPERATIONS[action]} {plan}" + (f" {payload({'reason': reason})}" if reason else "")


def replan_command(incident: str) -> str:
    return f"/incident replan {incident}"


def edit_command(plan: str, steps: list[str]) -> str:
    return f"/incident edit {plan} {payload({'steps': steps})}"


def resumption_command(action: str, resumption: str) -> str:
    verb = {"advance_stage": "advance-resumption", "hold_stage": "hold-resumption"}[action]
    return f"/workflow-recovery {verb} {resumption}"


def drill_command(name: str) -> str:
    return f"/host drill {name}"


def drill_cancel_command() -> str:
    return "/host drill cancel"


def running_drill(settings: dict[str, object]) -> dict[str, object] | None:
    """The drill the host runs now (armed or injected), from the log's ``drill`` setting."""
    rec = settings.get("drill")
    return rec if isinstance(rec, dict) and rec.get("status") in ("armed", "injected") else None


def clock_command(run: bool, speed: float | None = None) -> str:
    if not run:
        return "/host clock pause"
    return "/host clock run" + (f" --speed={speed:g}" if speed else "")

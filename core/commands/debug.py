"""``/debug '<json>'``: a read-only investigation producing findings with a severity."""

from __future__ import annotations

from . import payloads as P
from .analyses import choose
from .analyses.findings import SEVERITY_RANK
from .context import Context
from .registry import Operations, Outcome
from .reporting import analysis_outcome, scope_of

DEFAULT = ["agent_health", "stalled_agents", "state_consistency", "bottlenecks"]


OPS = Operations("debug", "a read-only investigation producing findings with a severity")
operation = OPS.operation


@operation(
    "debug",
    "investigate",
    kind="analysis",
    payload=P.Debug,
    default=True,
    workflow_arg="optional",
    summary="investigate: analyses chosen by scope, analysis and focus words; findings with severity",
)
async def investigate(ctx: Context, p: P.Debug) -> Outcome:
    """Focus words choose analyses (e.g. memory_leaks -> resource_leaks, cpu_spinning,
    agent_deadlocks -> stalled agents and dependency chains, partition_identification
    -> network); without any, a general health check runs."""
    names = choose([*p.focus, p.analysis or "", p.scope], DEFAULT)
    out = await analysis_outcome(ctx, names, scope_of(ctx), {"scope": p.scope, "analysis": p.analysis})
    floor = SEVERITY_RANK[p.severity_at_least]
    if floor > SEVERITY_RANK["info"]:
        out.result["findings"] = [f for f in out.result["findings"] if SEVERITY_RANK.get(f["severity"], 0) >= floor]
    return out

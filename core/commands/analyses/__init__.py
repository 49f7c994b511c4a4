"""The analyses: findings computed from the engine's state and telemetry, with evidence.

Each analysis is a function of the engine (and an optional set of workflows to
restrict to) returning :class:`~.findings.Finding` s. Nothing here changes state.
Operations, ``/debug`` and ``/subagents`` choose analyses by name; focus words such as
``memory_leaks`` or ``critical_path_analysis`` map onto them (:func:`choose`). The
analyses are declared in one module per kind and composed here.
"""

from __future__ import annotations

from ...engine import Engine
from . import consistency, flow, health, resources
from .findings import Analysis, Finding, WindowedAnalysis

_MODULES = (resources.DECLARED, flow.DECLARED, health.DECLARED, consistency.DECLARED)
ANALYSES: dict[str, Analysis] = {n: fn for m in _MODULES for n, fn in m.all.items()}
WINDOWED: dict[str, WindowedAnalysis] = {n: fn for m in _MODULES for n, fn in m.over_window.items()}
"""The analyses over time (samples, completions, failures) that compute over a window."""
DESCRIPTIONS: dict[str, str] = {n: d for m in _MODULES for n, d in m.descriptions.items()}

# -- choosing analyses ----------------------------------------------------------------

FOCUS_WORDS: list[tuple[str, list[str]]] = [
    ("leak", ["resource_leaks"]),
    ("spinning", ["cpu_spinning"]),
    ("deadlock", ["stalled_agents", "dependency_chains"]),
    ("stall", ["stalled_agents"]),
    ("bottleneck", ["bottlenecks"]),
    ("contention", ["bottlenecks", "conflicts"]),
    ("conflict", ["conflicts"]),
    ("realloc", ["reallocation"]),
    ("waste", ["reallocation", "utilisation"]),
    ("allocation", ["utilisation", "reallocation"]),
    ("optimi", ["reallocation", "bottlenecks"]),
    ("scaling", ["pool_capacity"]),
    ("available_agents", ["pool_capacity"]),
    ("capacity", ["pool_capacity", "utilisation"]),
    ("process_health", ["agent_health", "stalled_agents"]),
    ("health", ["agent_health"]),
    ("exhaustion", ["utilisation", "resource_leaks"]),
    ("memory", ["utilisation", "resource_leaks"]),
    ("cpu", ["utilisation", "cpu_spinning"]),
    ("communication", ["network"]),
    ("network", ["network"]),
    ("partition", ["network"]),
    ("connectivity", ["network"]),
    ("bandwidth", ["network"]),
    ("mesh", ["network"]),
    ("latency", ["network", "performance_trend"]),
    ("fault_tolerance", ["network", "agent_health"]),
    ("critical_path", ["critical_paths"]),
    ("dependency", ["dependency_chains"]),
    ("failure", ["agent_health", "failures"]),
    ("root_cause", ["agent_health", "failures"]),
    ("event", ["coordination_overhead"]),
    ("coordination", ["coordination_overhead"]),
    ("synchron", ["state_consistency", "log_replay"]),
    ("corruption", ["state_consistency", "log_replay"]),
    ("consistency", ["state_consistency"]),
    ("transaction", ["log_replay"]),
    ("history", ["log_replay"]),
    ("reconstruction", ["log_replay"]),
    ("audit", ["state_consistency", "log_replay"]),
    ("checkpoint", ["checkpoint_integrity"]),
    ("rollback", ["checkpoint_integrity"]),
    ("recovery", ["checkpoint_integrity"]),
    ("backup", ["checkpoint_integrity"]),
    ("throughput", ["performance_trend"]),
    ("response", ["performance_trend"]),
    ("trend", ["performance_trend"]),
    ("regression", ["performance_trend"]),
    ("degradation", ["performance_trend"]),
    ("efficien", ["performance_trend", "coordination_overhead"]),
    ("io_", ["bottlenecks"]),
]


def choose(words: list[str], default: list[str]) -> list[str]:
    """Analyses named by focus/scope words (in first-seen order), else ``default``."""
    out: list[str] = []
    for w in words:
        lw = w.lower()
        if lw in ANALYSES and lw not in out:
            out.append(lw)
            continue
        for key, names in FOCUS_WORDS:
            if key in lw:
                for n in names:
                    if n not in out:
                        out.append(n)
    return out or list(default)


async def run_analyses(
    engine: Engine, names: list[str], only: set[str] | None = None, window_s: float | None = None
) -> list[Finding]:
    """The named analyses; those over time compute over ``window_s`` when one is given."""
    out: list[Finding] = []
    for n in names:
        fn = WINDOWED.get(n)
        out.extend(await (fn(engine, only, window_s) if fn is not None else ANALYSES[n](engine, only)))
    return out

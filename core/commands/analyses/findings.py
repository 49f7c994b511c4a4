"""What an analysis returns (:class:`Finding`), how a module declares its analyses
(:class:`AnalysisSet`), the report of findings, and the fits the analyses share.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ...engine import Engine
from ...models import TERMINAL_WORKFLOW
from ...projection import State

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


@dataclass
class Finding:
    analysis: str
    severity: str
    subject: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Analysis = Callable[[Engine, "set[str] | None"], Awaitable[list[Finding]]]
WindowedAnalysis = Callable[[Engine, "set[str] | None", "float | None"], Awaitable[list[Finding]]]


class AnalysisSet:
    """One module's analyses, declared where they are written (``@DECLARED.analysis``)
    and composed by the package that lists the modules: nothing is registered by import."""

    def __init__(self) -> None:
        self.all: dict[str, Analysis] = {}
        self.over_window: dict[str, WindowedAnalysis] = {}
        """The analyses over time (samples, completions, failures) that compute over a window."""
        self.descriptions: dict[str, str] = {}

    def analysis(self, name: str, description: str) -> Callable[[Analysis], Analysis]:
        def deco(fn: Analysis) -> Analysis:
            self.all[name] = fn
            self.descriptions[name] = description
            return fn

        return deco

    def windowed(self, name: str, description: str) -> Callable[[WindowedAnalysis], WindowedAnalysis]:
        """An analysis that takes a time window (None: its own default)."""

        def deco(fn: WindowedAnalysis) -> WindowedAnalysis:
            async def default(engine: Engine, only: set[str] | None = None) -> list[Finding]:
                return await fn(engine, only, None)

            self.all[name] = default
            self.over_window[name] = fn
            self.descriptions[name] = description
            return fn

        return deco


def active_workflows(s: State, only: set[str] | None) -> list[Any]:
    return [w for w in s.workflows.values() if w.status not in TERMINAL_WORKFLOW and (only is None or w.id in only)]


def rate_slope(points: list[tuple[float, float]]) -> float:
    """Median rate of change per second: robust to the steps of tasks starting/ending."""
    rates = [(v1 - v0) / (t1 - t0) for (t0, v0), (t1, v1) in itertools.pairwise(points) if t1 > t0]
    return statistics.median(rates) if rates else 0.0


def lsq_slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    ts = [p[0] for p in points]
    vs = [p[1] for p in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / den if den else 0.0


def report(findings: list[Finding], analyses: list[str]) -> dict[str, Any]:
    """Findings sorted by severity with counts: what analysis operations return."""
    ordered = sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.analysis, f.subject))
    counts: dict[str, int] = {}
    for f in ordered:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    worst = ordered[0].severity if ordered else "info"
    return {"analyses": analyses, "findings": [f.as_dict() for f in ordered], "counts": counts, "worst": worst}

"""Telemetry: usage and performance samples, kept outside the hash chain.

Heartbeats and usage are too frequent to be events; they live here in ring buffers
for detectors and panes, and go to the store's metrics table in batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HISTORY = 720


@dataclass
class Series:
    """A bounded time series of (t, value)."""

    points: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def add(self, t: float, v: float) -> None:
        self.points.append((t, v))

    def last(self, default: float = 0.0) -> float:
        return self.points[-1][1] if self.points else default

    def values(self, n: int | None = None) -> list[float]:
        vals = [v for _, v in self.points]
        return vals[-n:] if n else vals

    def since(self, t0: float) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.points if t >= t0]


class Telemetry:
    """Latest samples per subject and metric, plus the rows waiting for the store."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self.liveness: dict[str, float] = {}
        self.agent_usage: dict[str, tuple[float, float]] = {}
        self.pending_rows: list[tuple[float, str, str, float]] = []

    def record(self, t: float, name: str, subject: str, value: float, persist: bool = True) -> None:
        key = (name, subject)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series()
        s.add(t, value)
        if persist:
            self.pending_rows.append((t, name, subject, value))

    def get(self, name: str, subject: str = "system") -> Series:
        return self.series.get((name, subject)) or Series()

    def take_rows(self) -> list[tuple[float, str, str, float]]:
        rows, self.pending_rows = self.pending_rows, []
        return rows

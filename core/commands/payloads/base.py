"""What every payload is: strict models (unknown fields refused), and the words converted once
(durations such as ``"2h"``, percentages such as ``"20_percent"``, labels, windows).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_ISO_RE = re.compile(
    r"^\s*P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?\s*$", re.I
)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


MAX_DURATION_S = 30 * 24 * 3600.0
"""The longest duration accepted anywhere (30 days): the simulated clock runs through
every event of a duration, so an unbounded one would run for hours and fill memory."""


def parse_duration(v: Any) -> float:
    """``90``, ``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``, ISO 8601 ``"PT2H"``/``"P1DT30M"``
    -> seconds (finite, at most 30 days)."""
    if isinstance(v, bool):
        raise ValueError("expected a duration such as 30s, 15m, 2h or PT2H")
    secs: float | None = None
    if isinstance(v, (int, float)):
        secs = float(v)
    elif isinstance(v, str):
        m = _DUR_RE.match(v)
        iso = _ISO_RE.match(v) if m is None else None
        if m:
            secs = float(m.group(1)) * _UNIT[m.group(2)]
        elif iso and any(iso.groups()):
            d, h, mi, sec = (float(x) if x else 0.0 for x in iso.groups())
            secs = d * 86400.0 + h * 3600.0 + mi * 60.0 + sec
    if secs is None:
        raise ValueError(f"expected a duration such as 30s, 15m, 2h or PT2H, got {v!r}")
    if secs < 0:
        raise ValueError("a duration cannot be negative")
    if not secs <= MAX_DURATION_S:  # also NaN
        raise ValueError(f"{v!r} is longer than the longest duration accepted, 30 days")
    return secs


_PCT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:_?percent|%)?\s*$")


def parse_percent(v: Any) -> float:
    """``20``, ``"20%"``, ``"20_percent"`` -> 20.0."""
    if isinstance(v, bool):
        raise ValueError("expected a percentage such as 20_percent")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        m = _PCT_RE.match(v)
        if m:
            return float(m.group(1))
    raise ValueError(f"expected a percentage such as 20_percent or 20%, got {v!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Percent = Annotated[float, BeforeValidator(parse_percent)]
Switch = Literal["enabled", "disabled"]
Severity = Literal["critical", "high", "medium", "low"]


class Payload(BaseModel):
    """A command's JSON argument. List defaults are given as values: pydantic copies them
    for each instance, and mypy checks them against the field's Literal type."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Empty(Payload):
    """No payload fields."""


WINDOW_FIELDS = ("time_period", "time_horizon", "since", "window")


class Windowed(Payload):
    """A time window back from now, under any of the names operators use for it."""

    time_period: Duration | None = Field(None, description="look back this far: 1h, 30m, PT2H")
    time_horizon: Duration | None = Field(None, description="the same as time_period")
    since: Duration | None = Field(None, description="the same as time_period")
    window: Duration | None = Field(None, description="the same as time_period")

    @model_validator(mode="after")
    def _one_window(self) -> Windowed:
        given = {f: getattr(self, f) for f in WINDOW_FIELDS if getattr(self, f) is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"give one time window, not {', '.join(f'{k}={v:g}s' for k, v in given.items())}")
        if any(v <= 0 for v in given.values()):
            raise ValueError("a time window must be longer than 0")
        return self

    def window_given(self) -> tuple[str, float] | None:
        """(the field named, seconds) or None when no window was given."""
        for f in WINDOW_FIELDS:
            v = getattr(self, f)
            if v is not None:
                return f, float(v)
        return None


class AnalysisRequest(Windowed):
    """What an analysis looks at: a scope word and focus words choosing analyses, and
    optionally a time window (the analyses over time series compute over it only)."""

    scope: str | None = Field(None, description="what is analysed (free text, echoed in the report)")
    analysis: str | None = Field(None, description="the kind of analysis (chooses analyses like focus)")
    focus: list[str] = Field(default_factory=list, description="focus words, e.g. memory_leaks, critical_path_analysis")
    workflows: list[str] = Field(default_factory=list, description="restrict to these workflows")


MAX_LABEL_CHARS = 200
"""The longest checkpoint label: a label is kept with its checkpoint and shown in
lists, so it is a name, not a document."""

Label = Annotated[str, Field(max_length=MAX_LABEL_CHARS, description=f"a name, at most {MAX_LABEL_CHARS} characters")]


class WindowRequest(Payload):
    window: Duration = Field(1800.0, description="how far back to look")
    baseline: Duration = Field(1800.0, description="the earlier window compared against (regression)")


class StatusRequest(Payload):
    verbose: bool = False

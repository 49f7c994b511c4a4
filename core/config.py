"""Configuration: the ecosystem's default numbers, overridable from a TOML file.

Every number the engine uses (capacity, thresholds, intervals, retry policy) lives
here so that an operator can change it with ``--config`` and a bad file is reported
by key, never by traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

# tomli 2.3.0 (pinned, pyproject): the standard library's tomllib is its 2.0.1 as pure
# Python; the compiled wheel reads a 5,000-task workflow file in 0.13 s instead of 0.22,
# with the same TOML 1.0 and the same messages. Faster or newer parsers accept what
# TOML 1.0 refuses (rtoml: "\\x41", "\\e", a time without seconds, newlines and a trailing
# comma in an inline table; tomli 2.5 reads TOML 1.1): a file would mean something else
# depending on what is installed.
from tomli import TOMLDecodeError as _DecodeError
from tomli import loads as _loads

from .config_errors import ConfigError as ConfigError  # declared there, re-exported


class TomlError(ValueError):
    """Text that is not TOML or that the reader cannot take; the message says why."""


def read_toml(text: str) -> dict[str, Any]:
    """The document ``text``; :class:`TomlError` (the parser's message, with its line and
    column) also for what the reader cannot take, never its RecursionError or ValueError."""
    try:
        return _loads(text)
    except _DecodeError as exc:
        raise TomlError(str(exc)) from None
    except RecursionError:  # the reader recurses into each array and inline table
        raise TomlError("arrays or tables nested too deeply") from None
    except ValueError:  # int() of a literal longer than Python converts
        raise TomlError(f"an integer of more than {sys.get_int_max_str_digits()} digits") from None


class _Section(BaseModel):
    # inf and NaN are refused everywhere: no bound holds against them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Capacity(_Section, defer_build=True):  # validated in Config's validator or at its default
    cpu_cores: float = Field(8.0, gt=0)
    memory_gb: float = Field(16.0, gt=0)
    storage_gb: float = Field(500.0, gt=0)
    agents: int = Field(20, gt=0)
    concurrent_workflows: int = Field(5, gt=0)
    _found: dict[str, str] = PrivateAttr(default_factory=dict)
    """Figures a runtime filled in from the machine or the cluster, and which."""

    def basis(self, key: str) -> str:
        """Where a figure comes from: ``config``, ``machine``, ``cluster`` or ``default``."""
        if key in self._found:
            return self._found[key]
        return "config" if key in self.model_fields_set else "default"

    @property
    def bases(self) -> dict[str, str]:
        return {k: self.basis(k) for k in ("cpu_cores", "memory_gb")}

    def filled(self, cpu_cores: float, memory_gb: float, source: str) -> Capacity:
        """A copy whose CPU and memory are ``source``'s (the machine's, the cluster's)
        where the config did not set them."""
        upd = {
            k: round(v, 2)
            for k, v in (("cpu_cores", cpu_cores), ("memory_gb", memory_gb))
            if k not in self.model_fields_set and v > 0
        }
        out = self.model_copy(update=upd)
        out._found = {**self._found, **dict.fromkeys(upd, source)}
        return out


class WorkflowLimits(_Section, defer_build=True):  # as Capacity
    cpu_cores: float = Field(6.0, gt=0)
    memory_gb: float = Field(12.0, gt=0)
    agents: int = Field(15, gt=0)
    max_duration_s: float = Field(6 * 3600.0, gt=0)


class Thresholds(_Section):
    cpu_warning: float = Field(80.0, ge=0, le=100)
    memory_warning: float = Field(85.0, ge=0, le=100)
    agents_critical: float = Field(90.0, ge=0, le=100)
    exhaustion: float = Field(90.0, ge=0, le=100)
    """Utilisation (percent) at or above which a sample counts toward exhaustion."""
    exhaustion_samples: int = Field(3, ge=1)
    """Consecutive samples above ``exhaustion`` before RESOURCE_EXHAUSTION fires."""
    safe: float = Field(75.0, ge=0, le=100)
    """Utilisation under which a recovery stage counts as stable."""
    stable_hold_s: float = Field(60.0, ge=0)


class Intervals(_Section):
    heartbeat_s: float = Field(30.0, ge=0.05)
    checkpoint_s: float = Field(15 * 60.0, ge=1.0)
    checkpoint_events: int = Field(20_000, ge=100)
    """Also checkpoint after this many events (or 10 per live task, workflow and agent,
    when more): what an open replays stays bounded, checkpoints' cost follows live state."""
    verify_whole_s: float = Field(6 * 3600.0, gt=0)
    """The data-integrity check verifies the whole log (every row and checkpoint, in a
    worker off the event loop) this often; its periodic checks read what was added."""
    sample_s: float = Field(5.0, ge=0.05)  # smaller: a sampling loop that never lets the clock move
    event_retention_s: float = Field(7 * 24 * 3600.0, gt=0)
    metric_retention_s: float = Field(7 * 24 * 3600.0, gt=0)
    metric_bucket_s: float = Field(60.0, gt=0)
    """Samples older than the gauges' history are kept as one mean per series per bucket."""
    workflow_timeout_s: float = Field(4 * 3600.0, gt=0)
    missed_heartbeats: int = Field(2, ge=1)
    input_wait_s: float = Field(10.0, gt=0, le=86400)
    """Quiet time after which an interactive task blocked reading its stdin (or showing a
    prompt) counts as waiting for input."""
    input_stall_s: float = Field(600.0, gt=0, le=7 * 86400)
    """A task waiting for input this long opens an incident."""


class Retries(_Section):
    attempts: int = Field(3, ge=1)
    backoff_s: float = Field(1.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1)


class Performance(_Section):
    response_warning_s: float = Field(3.0, gt=0)
    response_critical_s: float = Field(8.0, gt=0)
    degradation_trigger_pct: float = Field(5.0, gt=0)
    utilisation_trigger_pct: float = Field(80.0, gt=0)
    response_time_trigger_pct: float = Field(10.0, gt=0)


class Supervision(_Section):
    """Restart intensity in the manner of OTP supervisors."""

    max_failures: int = Field(3, ge=1)
    window_s: float = Field(300.0, gt=0)


class Approval(_Section):
    """Which plan steps run on their own and which wait for an operator."""

    auto: list[str] = Field(default_factory=lambda: ["analysis", "checkpoint", "monitoring"])
    manual: list[str] = Field(default_factory=lambda: ["destructive"])
    hold_clock: bool = False
    """On the simulated runtime, the running clock holds while a plan waits for approval
    (a manual step still to run): the fleet does not move on while the operator reads it.
    ``/host advance`` still moves it on purpose; real agents run on the wall clock."""


class Console(_Section):
    theme: str = "opsdeck-dark"
    speed: float = Field(30.0, gt=0)
    """Simulated seconds per wall second when the demo runs under the console."""
    keys: dict[str, str] = Field(default_factory=dict)
    filters: dict[str, str] = Field(default_factory=dict)
    """Saved event-log filters: ``[console.filters] failures = "type:TASK_FAILED"``, used as ``@failures``."""
    incident_hook: list[str] = Field(default_factory=list)
    """A command (argv, no shell) the console runs when an incident opens, with the incident's
    summary as its last argument and the incident in its environment (OPSDECK_INCIDENT_ID, _TYPE, _SEVERITY, _SCENARIO, _SUMMARY), e.g.
    ``incident_hook = ["notify-send", "opsdeck"]``."""


class Storage(_Section):
    trust_owner: bool = False
    """Use databases (and the files beside them) that another user owns or others may
    write: a shared setup the operator trusts. Recorded in the log when it lets one through."""


class Server(_Section):
    """The host's control endpoint: how many clients it holds and how long it waits for them."""

    max_connections: int = Field(512, ge=2)
    """Open connections at once (unix socket and TCP together); past it a new one gets 503."""
    max_followers: int = Field(256, ge=1)
    """Event streams (``GET /v1/events``) at once; past it a new one gets 503."""
    send_buffer_kb: int = Field(64, ge=16, le=65536)
    """Characters of event data read from the store for one follower at a time (one page; what it holds)."""
    stall_s: float = Field(30.0, gt=0)
    """A follower that reads nothing this long while events wait for it is dropped, told to resume."""
    idle_timeout_s: float = Field(30.0, gt=0)
    """A connection that sends no whole request head this long (after opening or its last answer) is closed."""
    body_timeout_s: float = Field(30.0, gt=0)
    """A request body not received in full this long is refused (408)."""


class Usage(_Section):
    """Budgets and rate limits of AI agents (tokens, money, API rate)."""

    warn_share: float = Field(0.8, gt=0, le=1)
    """The share of a budget at which BUDGET_WARNING is raised (unless the budget sets its own)."""
    rate_limit_wait_s: float = Field(60.0, gt=0)
    """How long a pool is held when an agent reports a rate limit without saying when it resets."""
    rate_limit_max_wait_s: float = Field(6 * 3600.0, gt=0)
    """The longest hold a reported reset time may impose (a later one is cut to this)."""
    hold_s: float = Field(10.0, ge=0)
    """Stable spend/progress time the usage criteria require before they pass."""


class Config(_Section):
    capacity: Capacity = Field(default_factory=Capacity)
    workflow_limits: WorkflowLimits = Field(default_factory=WorkflowLimits)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    intervals: Intervals = Field(default_factory=Intervals)
    retries: Retries = Field(default_factory=Retries)
    performance: Performance = Field(default_factory=Performance)
    supervision: Supervision = Field(default_factory=Supervision)
    approval: Approval = Field(default_factory=Approval)
    console: Console = Field(default_factory=Console)
    storage: Storage = Field(default_factory=Storage)
    server: Server = Field(default_factory=Server)
    usage: Usage = Field(default_factory=Usage)


PriorityBand = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]


def load_config(path: str | Path | None) -> Config:
    """Read a TOML config; missing keys take the defaults of DESIGN.md."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = read_toml(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except TomlError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"])
            problems.append(f"{p}: key '{key}': {err['msg']}")
        raise ConfigError("\n".join(problems)) from None

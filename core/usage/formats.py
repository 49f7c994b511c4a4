"""Usage lines in the three forms an agent may print, read into plain signals.

* opsdeck's own: ``OPSDECK_USAGE {"input_tokens": N, "output_tokens": N, "cost_usd": X,
  "model": "..."}`` (an increment) and ``OPSDECK_RATE_LIMITED {"reset_at": "ISO-8601"}``
  (or ``"retry_after_s": S``).
* Claude Code ``--output-format stream-json``: one JSON object per line; ``assistant``
  lines carry ``message.id`` and ``message.usage`` (the same message may be printed on
  several lines, one per content block), the final ``result`` line carries the whole
  session's ``usage`` and ``total_cost_usd``; an error result (``is_error``) may say
  "usage limit reached|<epoch>" or carry ``api_error_status`` 429.
* Codex ``exec --json``: ``turn.completed`` lines carry the turn's ``usage``
  (``input_tokens``, ``cached_input_tokens`` -- a part of the input -- and
  ``output_tokens``); ``turn.failed`` (``error.message``) and ``error`` (``message``)
  lines report failures, a rate limit among them.

Every function here takes one line and returns a signal or None; nothing raises on
bad input (a line that claims to be usage but is not well formed is a :class:`Malformed`).
Standard library only: the agent host reads every line of a task's output with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

USAGE_PREFIX = "OPSDECK_USAGE"
RATE_PREFIX = "OPSDECK_RATE_LIMITED"
LINE_MAX = 1 << 20
"""Characters of one line parsed for usage; a longer line is counted as malformed, not parsed."""


@dataclass(frozen=True)
class Tokens:
    """Token counts as opsdeck accounts them: ``input`` is every input token the model
    read (cache reads and writes included), ``cached`` the part of it read from a cache."""

    input: int = 0
    output: int = 0
    cached: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(self.input + other.input, self.output + other.output, self.cached + other.cached)

    @property
    def total(self) -> int:
        return self.input + self.output


@dataclass(frozen=True)
class OpsdeckUsage:
    """An increment reported by an ``OPSDECK_USAGE`` line."""

    tokens: Tokens
    cost_usd: float
    model: str | None


@dataclass(frozen=True)
class ClaudeMessage:
    """An assistant message's usage (``message_id`` names it: it may be printed again)."""

    session: str
    message_id: str
    tokens: Tokens
    model: str | None


@dataclass(frozen=True)
class ClaudeResult:
    """A session's final totals (the ``result`` line)."""

    session: str
    tokens: Tokens | None
    cost_usd: float | None
    is_error: bool
    text: str
    api_status: int | None


@dataclass(frozen=True)
class CodexTurn:
    tokens: Tokens


@dataclass(frozen=True)
class RateLimit:
    """An agent hit a usage limit or HTTP 429; ``reset_at`` (epoch seconds) when it said when."""

    source: str
    reason: str
    reset_at: float | None


@dataclass(frozen=True)
class Malformed:
    """A line that claims to be usage (its prefix or its ``type``) but cannot be read."""

    source: str
    reason: str


Signal = OpsdeckUsage | ClaudeMessage | ClaudeResult | CodexTurn | RateLimit | Malformed

_LIMIT_WORDS = re.compile(r"usage limit|rate limit|rate_limit|too many requests|\b429\b|hit your limit", re.I)
_EPOCH_AFTER_PIPE = re.compile(r"\|(\d{9,11})\b")


def _count(obj: dict[str, Any], key: str) -> int | None:
    """A non-negative integer count, or None when absent; raises ValueError when wrong."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or v != int(v):
        raise ValueError(f"{key} is {v!r}, not a non-negative integer")
    return int(v)


def _money(v: Any, key: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or v != v or v == float("inf"):
        raise ValueError(f"{key} is {v!r}, not a non-negative number")
    return float(v)


def iso_to_epoch(text: Any) -> float:
    """An ISO-8601 time (``Z`` or an offset; naive means UTC) as epoch seconds."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"reset_at is {text!r}, not an ISO-8601 time")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def read_line(line: str, now: float) -> Signal | None:
    """The usage signal of one output line, or None for a line that is none of the forms."""
    if line.startswith((USAGE_PREFIX, RATE_PREFIX)):
        return _opsdeck(line, now)
    if not line.startswith("{"):
        return None
    if len(line) > LINE_MAX:
        return Malformed("json", f"a JSON line of {len(line):,} characters is over {LINE_MAX:,}; not read")
    obj = _json_object(line)
    if obj is None:
        return None  # not JSON: ordinary output that happens to start with a brace
    kind = obj.get("type")
    if not isinstance(kind, str):
        return None
    try:
        if kind == "assistant":
            return _claude_message(obj)
        if kind == "result":
            return _claude_result(obj)
        if kind == "turn.completed":
            return CodexTurn(_codex_tokens(obj.get("usage")))
        if kind in ("turn.failed", "error"):
            return _codex_error(obj)
    except (ValueError, TypeError, AttributeError) as exc:
        return Malformed("claude" if kind in ("assistant", "result") else "codex", f"{kind} line: {exc}")
    return None  # another type of either format: tolerated, carries no usage


def _opsdeck(line: str, now: float) -> Signal | None:
    prefix = USAGE_PREFIX if line.startswith(USAGE_PREFIX) else RATE_PREFIX
    rest = line[len(prefix) :]
    if rest and not rest[0].isspace():
        return None  # another word that starts the same (OPSDECK_USAGEX)
    if len(line) > LINE_MAX:
        return Malformed("opsdeck", f"{prefix} line of {len(line):,} characters is over {LINE_MAX:,}")
    obj = _json_object(rest.strip() or "{}")
    if obj is None:
        return Malformed("opsdeck", f"{prefix}: not a JSON object")
    try:
        if prefix == RATE_PREFIX:
            reset: float | None = None
            if obj.get("reset_at") is not None:
                reset = iso_to_epoch(obj["reset_at"])
            elif obj.get("retry_after_s") is not None:
                reset = now + float(_money(obj["retry_after_s"], "retry_after_s") or 0.0)
            reason = obj.get("reason")
            return RateLimit("opsdeck", str(reason)[:200] if reason else "rate limited", reset)
        tokens = Tokens(
            _count(obj, "input_tokens") or 0,
            _count(obj, "output_tokens") or 0,
            _count(obj, "cached_input_tokens") or 0,
        )
        model = obj.get("model")
        cost = _money(obj.get("cost_usd"), "cost_usd") or 0.0
        if tokens.total == 0 and cost == 0.0:
            return Malformed("opsdeck", f"{prefix}: no input_tokens, output_tokens or cost_usd")
        return OpsdeckUsage(tokens, cost, str(model)[:100] if model else None)
    except (ValueError, TypeError) as exc:
        return Malformed("opsdeck", f"{prefix}: {exc}")


def _claude_tokens(usage: Any) -> Tokens:
    """Claude's input is split: ``input_tokens`` (uncached), ``cache_creation_input_tokens``
    and ``cache_read_input_tokens``; opsdeck's input is their sum, cached the reads."""
    if not isinstance(usage, dict):
        raise ValueError("usage is not an object")
    fresh = _count(usage, "input_tokens")
    out = _count(usage, "output_tokens")
    if fresh is None and out is None:
        raise ValueError("usage has neither input_tokens nor output_tokens")
    written = _count(usage, "cache_creation_input_tokens") or 0
    read = _count(usage, "cache_read_input_tokens") or 0
    return Tokens((fresh or 0) + written + read, out or 0, read)


def _claude_message(obj: dict[str, Any]) -> Signal | None:
    msg = obj.get("message")
    if not isinstance(msg, dict) or "usage" not in msg:
        return None  # a message without usage (tolerated)
    mid = msg.get("id")
    if not isinstance(mid, str) or not mid:
        raise ValueError("message has usage but no id")
    model = msg.get("model")
    return ClaudeMessage(str(obj.get("session_id") or ""), mid, _claude_tokens(msg["usage"]), model or None)


def _claude_result(obj: dict[str, Any]) -> Signal:
    session = str(obj.get("session_id") or "")
    tokens = _claude_tokens(obj["usage"]) if obj.get("usage") is not None else None
    cost = _money(obj.get("total_cost_usd"), "total_cost_usd")
    status = obj.get("api_error_status")
    status = int(status) if isinstance(status, int | float) and not isinstance(status, bool) else None
    text = obj.get("result")
    text = text if isinstance(text, str) else str(obj.get("subtype") or "")
    return ClaudeResult(session, tokens, cost, bool(obj.get("is_error")), text[:500], status)


def claude_limit(res: ClaudeResult) -> RateLimit | None:
    """The rate limit an error result reports, if it is one."""
    if not res.is_error:
        return None
    if res.api_status != 429 and not _LIMIT_WORDS.search(res.text):
        return None
    m = _EPOCH_AFTER_PIPE.search(res.text)
    return RateLimit("claude", res.text[:200] or "usage limit", float(m.group(1)) if m else None)


def _codex_tokens(usage: Any) -> Tokens:
    if not isinstance(usage, dict):
        raise ValueError("usage is not an object")
    inp = _count(usage, "input_tokens")
    out = _count(usage, "output_tokens")
    if inp is None and out is None:
        raise ValueError("usage has neither input_tokens nor output_tokens")
    return Tokens(inp or 0, out or 0, min(_count(usage, "cached_input_tokens") or 0, inp or 0))


def _codex_error(obj: dict[str, Any]) -> Signal | None:
    err = obj.get("error")
    text = err.get("message") if isinstance(err, dict) else obj.get("message")
    if not isinstance(text, str):
        return None
    if not _LIMIT_WORDS.search(text):
        return None  # another failure: the exit status reports it
    m = _EPOCH_AFTER_PIPE.search(text)
    return RateLimit("codex", text[:200], float(m.group(1)) if m else None)

"""One run's usage, kept from the lines it prints: totals that count each token once.

Claude Code prints an assistant message's usage on every line of that message (one
per content block), and then the whole session's usage again on its ``result`` line.
So a message counts once (by its id, its largest counts), and a session's result,
when it comes, replaces the sum of its messages (the CLI's own total, with its cost).
Codex turns and ``OPSDECK_USAGE`` lines are increments and add up. Lines that claim
to be usage but cannot be read are counted (with the last reason), never fatal.

Standard library only (the agent host runs it); :meth:`Meter.report` is what the
host sends, validated into :class:`core.usage.models.UsageReport` by the console.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .formats import (
    LINE_MAX,
    ClaudeMessage,
    ClaudeResult,
    CodexTurn,
    Malformed,
    OpsdeckUsage,
    RateLimit,
    Tokens,
    claude_limit,
    read_line,
)

MESSAGES_KEPT = 4096
"""Claude message ids remembered per run (to count a message printed again once)."""
MODELS_KEPT = 8


@dataclass
class _Session:
    messages: OrderedDict[str, Tokens] = field(default_factory=OrderedDict)
    summed: Tokens = field(default_factory=Tokens)
    result: Tokens | None = None
    cost_usd: float | None = None


def _larger(a: Tokens, b: Tokens) -> Tokens:
    return Tokens(max(a.input, b.input), max(a.output, b.output), max(a.cached, b.cached))


class Meter:
    """The usage of one run of one task, from its output lines."""

    def __init__(self) -> None:
        self.opsdeck = Tokens()
        self.opsdeck_cost = 0.0
        self.codex = Tokens()
        self.sessions: dict[str, _Session] = {}
        self.models: list[str] = []
        self.malformed = 0
        self.malformed_last: str | None = None
        self.rate_limit: RateLimit | None = None
        self.changed = False
        """Something new since the last :meth:`report`."""
        self.seen = False
        """At least one usage, rate-limit or unreadable usage line was read."""
        self._line = bytearray()
        self._skip = False  # the line being read cannot be usage: not held
        self._over = False  # the line being read is over LINE_MAX: not held, counted

    # -- bytes --------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        """Read a chunk of a task's output: whole lines (up to :data:`LINE_MAX`
        bytes, whatever the console's cap on displayed lines) go to :meth:`take`; only
        lines that start like usage (``{`` or ``O``) are held while they arrive."""
        start = 0
        while True:
            nl = data.find(b"\n", start)
            self._hold(data[start : nl if nl >= 0 else len(data)])
            if nl < 0:
                return
            self._end(now)
            start = nl + 1

    def finish(self, now: float) -> None:
        """The output ended: its last line, if it had no newline."""
        self._end(now)

    def _hold(self, piece: bytes) -> None:
        if self._skip or self._over or not piece:
            return
        if not self._line and piece[:1] not in (b"{", b"O"):
            self._skip = True
            return
        if len(self._line) + len(piece) > LINE_MAX:
            self._over = True
            self._line.clear()
            return
        self._line += piece

    def _end(self, now: float) -> None:
        if self._over:
            self._count_malformed(f"json: a line over {LINE_MAX:,} bytes; not read")
        elif self._line:
            self.take(self._line.decode("utf-8", "replace").rstrip("\r"), now)
        self._line.clear()
        self._skip = self._over = False

    def _count_malformed(self, why: str) -> None:
        self.seen = self.changed = True
        self.malformed += 1
        self.malformed_last = why[:300]

    # -- reading ------------------------------------------------------------------
    def take(self, line: str, now: float) -> bool:
        """Read one output line; True when it was a usage or rate-limit line."""
        sig = read_line(line, now)
        if sig is None:
            return False
        self.seen = self.changed = True
        if isinstance(sig, Malformed):
            self._count_malformed(f"{sig.source}: {sig.reason}")
        elif isinstance(sig, OpsdeckUsage):
            self.opsdeck = self.opsdeck + sig.tokens
            self.opsdeck_cost += sig.cost_usd
            self._model(sig.model)
        elif isinstance(sig, CodexTurn):
            self.codex = self.codex + sig.tokens
        elif isinstance(sig, ClaudeMessage):
            self._message(sig)
        elif isinstance(sig, ClaudeResult):
            s = self.sessions.setdefault(sig.session, _Session())
            if sig.tokens is not None:
                s.result = sig.tokens
            if sig.cost_usd is not None:
                s.cost_usd = sig.cost_usd
            limit = claude_limit(sig)
            if limit is not None:
                self.rate_limit = limit
        elif isinstance(sig, RateLimit):
            self.rate_limit = sig
        return True

    def _model(self, model: str | None) -> None:
        if model and model not in self.models and len(self.models) < MODELS_KEPT:
            self.models.append(model)

    def _message(self, m: ClaudeMessage) -> None:
        s = self.sessions.setdefault(m.session, _Session())
        old = s.messages.get(m.message_id)
        new = m.tokens if old is None else _larger(old, m.tokens)
        if old is not None:
            s.summed = Tokens(s.summed.input - old.input, s.summed.output - old.output, s.summed.cached - old.cached)
        s.summed = s.summed + new
        s.messages[m.message_id] = new
        s.messages.move_to_end(m.message_id)
        while len(s.messages) > MESSAGES_KEPT:
            s.messages.popitem(last=False)
        self._model(m.model)

    # -- totals -------------------------------------------------------------------
    def claude(self) -> tuple[Tokens, float]:
        """Claude's tokens and cost: per session, its result when it came, else its messages."""
        tokens, cost = Tokens(), 0.0
        for s in self.sessions.values():
            tokens = tokens + (s.result if s.result is not None else s.summed)
            cost += s.cost_usd or 0.0
        return tokens, cost

    def report(self) -> dict[str, Any]:
        """The run's totals so far (JSON for the host's report); clears :attr:`changed`."""
        self.changed = False
        claude, claude_cost = self.claude()
        total = self.opsdeck + self.codex + claude
        by_source = {}
        for name, t, cost in (
            ("opsdeck", self.opsdeck, self.opsdeck_cost),
            ("claude", claude, claude_cost),
            ("codex", self.codex, 0.0),
        ):
            if t.total or cost:
                by_source[name] = {
                    "input_tokens": t.input,
                    "output_tokens": t.output,
                    "cached_input_tokens": t.cached,
                    "cost_usd": round(cost, 6),
                }
        rl = self.rate_limit
        return {
            "input_tokens": total.input,
            "output_tokens": total.output,
            "cached_input_tokens": total.cached,
            "cost_usd": round(self.opsdeck_cost + claude_cost, 6),
            "by_source": by_source,
            "models": list(self.models),
            "malformed": self.malformed,
            "malformed_last": self.malformed_last,
            "rate_limit": None if rl is None else {"source": rl.source, "reason": rl.reason, "reset_at": rl.reset_at},
        }

"""Events and the event-line codec ``TYPE:component:scope:{json}``.

Every state change is an :class:`Event`. The line codec is the ecosystem's wire
format: it splits on the first three colons only (the JSON holds colons) and it
accepts the seed document's one non-JSON value, ``"agents":19/20``, as the text
``"19/20"``. Any other malformed line raises :class:`EventLineError` naming the
column, and nothing is applied.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, dataclass_transform

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

GENESIS_HASH = "0" * 64
_sha256 = hashlib.sha256
_T = TypeVar("_T")

_TYPE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
# A bare ratio such as 19/20 where a JSON value is expected (after ':' or '[' or ',').
_RATIO_RE = re.compile(r"(?<=[:\[,])\s*(\d+(?:\.\d+)?/\d+(?:\.\d+)?)\s*(?=[,}\]])")


class Severity(StrEnum):
    """How bad an event is, in rank order: ``at_least`` answers "X or worse"."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def at_least(self, floor: Severity | str) -> bool:
        """This severity is ``floor`` or worse."""
        return self.rank >= _SEVERITY_RANK[Severity(floor)]

    @classmethod
    def or_worse(cls, floor: Severity | str) -> tuple[Severity, ...]:
        """Every severity that is ``floor`` or worse, mildest first."""
        low = _SEVERITY_RANK[Severity(floor)]
        return tuple(s for s in cls if _SEVERITY_RANK[s] >= low)


_SEVERITY_RANK: dict[str, int] = {s.value: i for i, s in enumerate(Severity)}


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def _fact(cls: type[_T]) -> type[_T]:
    """An event is immutable to the type checker (mypy refuses an assignment to its
    fields) and a plain slotted object at run time: a frozen dataclass sets each field
    through ``object.__setattr__``, half again the cost of building one, once per event."""
    return dataclass(slots=True)(cls)


@_fact
class Event:
    """One immutable fact in the log. ``seq`` is 1-based and gap-free."""

    seq: int
    ts: float
    type: str
    component: str
    scope: str
    data: dict[str, Any] = field(default_factory=dict)
    actor: str = "engine"
    plain: bool = field(default=False, compare=False, repr=False)
    """Its data's canonical JSON was orjson's as it is (:func:`encode_data`, set by the
    engine's emit): its line's JSON is orjson's too, without the checks. The data are
    not changed after the event is recorded (their stored text was encoded then)."""
    line_head: str = field(default="", compare=False, repr=False)
    """Its line's ``TYPE:component:scope:`` as the engine's emit keeps it per header (or
    empty): :meth:`line` then joins two strings, not seven (about 700 instructions less)."""
    text: str = field(default="", compare=False, repr=False)
    """Its data's canonical JSON, as stored, when that is also its line's JSON (the emitter
    built the data with its keys in sorted order at every depth), else empty: :meth:`line`
    then reuses it instead of encoding the data again."""

    def line(self) -> str:
        """The event line (:func:`format_line`'s text, built here: one call fewer per event
        for each subscriber that prints it)."""
        if self.text:
            return (self.line_head or f"{self.type}:{self.component}:{self.scope}:") + self.text
        if self.plain:
            # orjson's defaults: its options only pass dataclasses and datetimes through, and data
            # holding one is not plain (the emit's encoding with them raised TypeError)
            head = self.line_head or f"{self.type}:{self.component}:{self.scope}:"
            return head + _dumps(self.data).decode()
        return f"{self.type}:{self.component}:{self.scope}:{dumps_compact(self.data)}"

    def canonical(self) -> str:
        return canonical_encoding(self.seq, self.ts, self.type, self.component, self.scope, self.actor, self.data)


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_ORJSON_COMPACT = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_DIFFERS = ("null", "0.0000", "e-")
"""Where orjson's bytes may differ from the reference encoder's: a float below 1e-4
(``0.00001``, ``1.5e-7`` where Python writes ``1e-05``, ``1.5e-07``) and NaN or
infinity (``null`` where Python writes ``NaN``). Output holding one of the float
pieces (or text that merely contains it) is encoded again by the reference encoder;
output holding ``null`` only when the data has a non-finite float (:func:`_finite`:
``None`` writes ``null`` too, and snapshots and history entries hold many). Three
substring scans cost less than one regular-expression pass, and scans of the decoded
text less than scans of the bytes (``bytes.__contains__`` takes a buffer per call;
the pieces are ASCII, so they occur in the UTF-8 bytes exactly where in the text).
``e-`` is looked for only in text holding a ``-``: a two-character needle whose first
character is as common as ``e`` costs a scan of about 100 ns on a task event's data, a
single character's about 13 ns (most events' data hold no ``-``)."""
_NULL, _SMALL, _EXP = _DIFFERS
_DASH = "-"
_dumps = orjson.dumps


def canonical_json(data: Any) -> str:
    """Keys sorted, no whitespace: the one encoding that is hashed and stored
    (:func:`encode_data`'s text; the call more costs ~45 ns, once per row in verify)."""
    return encode_data(data)[0]


def encode_data(
    data: Any, option: int = _ORJSON_OPTIONS, reference: Callable[[Any], str] = _CANONICAL.encode
) -> tuple[str, bool]:
    """The canonical JSON of ``data`` (keys sorted, no whitespace) and whether it is
    orjson's output as it is; with ``option`` and ``reference``, another encoding by
    the same steps (:func:`dumps_compact`). The emit calls it with the defaults, which
    cost it nothing over the constants they are (measured).

    The reference is the standard library's encoder (``sort_keys``, compact, no ASCII
    escaping); orjson gives the same bytes about ten times faster, and whatever it
    cannot give identically (integers beyond 64 bits, non-string keys, lone
    surrogates, the floats :data:`_DIFFERS` finds) goes to the reference encoder.
    A test holds the two to the same bytes on a large varied corpus.

    The second value (True: orjson's output was taken) holds for the data in any key
    order: what the checks look for are pieces of single values (a float's text,
    ``null``), never of the separators between them, and orjson writes each value
    alike sorted or not. So the same data's compact text in its own order
    (:func:`dumps_compact`) is orjson's too, without its checks (:meth:`Event.line`)."""
    try:
        out = _dumps(data, option=option).decode()
    except TypeError:
        return reference(data), False
    if _SMALL in out or (_DASH in out and _EXP in out) or (_NULL in out and not _finite(data)):
        return reference(data), False
    return out, True


def dumps_compact(data: Any) -> str:
    """Compact JSON in the data's own key order (an event line's payload): the standard
    library's bytes, from orjson where it writes the same (:func:`encode_data`)."""
    return encode_data(data, _ORJSON_COMPACT, _COMPACT.encode)[0]


def _finite(data: Any) -> bool:
    """No float in ``data`` (at any depth) is NaN or infinite: then a ``null`` in orjson's
    output is a ``None``, written as the reference encoder writes it. Whatever orjson
    encodes as an object or an array (dicts, lists, tuples and their subclasses) is
    walked. Measured (commit a5fbe64): canonical_json with this walk instead of the
    reference encoder's run, over the checkpoint states and history entries of a
    pipeline and a scheduling run, min 33.8 -> 17.7 us each."""
    stack = [data]
    pop, push, isfinite = stack.pop, stack.extend, math.isfinite
    while stack:
        o = pop()
        t = type(o)
        if t is str or t is int or o is None or t is bool:
            continue
        if t is float:
            if not isfinite(o):
                return False
        elif t is dict:
            push(o.values())
        elif t is list or t is tuple:
            push(o)
        elif isinstance(o, float):
            if not isfinite(o):
                return False
        elif isinstance(o, dict):
            push(o.values())
        elif isinstance(o, (list, tuple)):
            push(o)
    return True


def reference_compact_json(data: Any) -> str:
    """The standard library's compact encoding (what :func:`dumps_compact` must equal)."""
    return _COMPACT.encode(data)


def reference_canonical_json(data: Any) -> str:
    """The standard library's canonical encoding (what :func:`canonical_json` must equal)."""
    return _CANONICAL.encode(data)


def canonical_encoding(
    seq: int, ts: float, type_: str, component: str, scope: str, actor: str, data: dict[str, Any]
) -> str:
    """The bytes the hash chain covers: every field, keys sorted, no whitespace."""
    return canonical_envelope(seq, ts, type_, component, scope, actor, canonical_json(data))


def canonical_envelope(seq: int, ts: float, type_: str, component: str, scope: str, actor: str, data_json: str) -> str:
    """Same bytes as ``canonical_json([seq, ts, type, component, scope, actor, data])``,
    built from the data's canonical JSON so that it is encoded once per event."""
    t = ts_text(ts)
    return f"[{seq:d},{t},{_quoted(type_)},{_quoted(component)},{_quoted(scope)},{_quoted(actor)},{data_json}]"


_QUOTED: dict[str, str] = {}


def _quoted(text: str) -> str:
    """JSON string literal, memoised: headers and actors repeat endlessly."""
    q = _QUOTED.get(text)
    if q is None:
        q = _CANONICAL.encode(text)
        if len(_QUOTED) < 10_000:
            _QUOTED[text] = q
    return q


_HEADS: dict[tuple[str, str, str, str], str] = {}


def chain_head(type_: str, component: str, scope: str, actor: str) -> str:
    """The envelope's four quoted header fields as one piece (memoised: headers and
    actors repeat endlessly)."""
    head = _HEADS.get((type_, component, scope, actor))
    if head is None:
        head = f"{_quoted(type_)},{_quoted(component)},{_quoted(scope)},{_quoted(actor)},"
        if len(_HEADS) < 10_000:
            _HEADS[(type_, component, scope, actor)] = head
    return head


def ts_text(ts: float) -> str:
    """A timestamp as the envelope writes it (``repr`` of a finite float, else the
    reference encoder's text)."""
    return repr(ts) if type(ts) is float and math.isfinite(ts) else _CANONICAL.encode(ts)


def envelope_hash(prev_hash: str, seq: int, t: str, head: str, data_json: str) -> str:
    """The chain's formula from pieces already encoded: SHA-256 over the previous hash
    followed by the canonical envelope ``[seq,ts,type,component,scope,actor,data]`` (the
    same text as :func:`canonical_envelope`'s), from the timestamp's text
    (:func:`ts_text`), the header's piece (:func:`chain_head`) and the data's canonical
    JSON. ``seq`` is an ``int`` (``{seq}`` and ``{seq:d}`` write it alike; the plain form
    costs a format-spec parse less). The one spelling of the chain: called by
    :func:`chain_step` (and through it :func:`chain_next`), :func:`chain_rows` and the
    open's check in ``core.engine.opening``."""
    return _sha256(f"{prev_hash}[{seq},{t},{head}{data_json}]".encode()).hexdigest()


def chain_step(prev_hash: str, seq: int, ts: float, head: str, data_json: str) -> str:
    """:func:`envelope_hash` from the header's piece (:func:`chain_head`), the
    timestamp's text reused when the clock reading is the one before."""
    global _LAST_TS
    last = _LAST_TS  # one tuple, rebound whole: a reader in another thread sees a pair that belongs together
    if ts is last[0]:  # the same clock reading as the event before (an instant's events share it)
        t = last[1]
    else:
        t = ts_text(ts)
        _LAST_TS = (ts, t)
    return envelope_hash(prev_hash, seq, t, head, data_json)


_LAST_TS: tuple[Any, str] = (object(), "")
"""The last timestamp object :func:`chain_step` encoded and its text (compared by identity)."""

UnchainedRow = tuple[int, float, str, str, str, str, str, str]
"""An event numbered and encoded, not yet chained: (seq, ts, type, component, scope,
actor, data's canonical JSON, the header's envelope piece from :func:`chain_head`)."""
EventRow = tuple[int, float, str, str, str, str, str, str, str]
"""A row of the events table: (seq, ts, type, component, scope, actor, data, prev_hash, hash)."""


def chain_rows(prev_hash: str, rows: Sequence[UnchainedRow]) -> list[EventRow]:
    """The rows chained from ``prev_hash`` in one pass: each hash is
    :func:`envelope_hash`'s, computed in one loop over a group commit's batch rather
    than once per event between the folds (in the engine: 2.1-2.6 µs a row against
    2.3-4.0 per event, the hashing's code and data staying in cache)."""
    out: list[EventRow] = []
    append = out.append
    hash_ = envelope_hash
    last: Any = object()
    t = ""
    for seq, ts, type_, component, scope, actor, data_json, head in rows:
        if ts is not last:  # an instant's events share one clock reading (the same object)
            t = ts_text(ts)
            last = ts
        h = hash_(prev_hash, seq, t, head, data_json)
        append((seq, ts, type_, component, scope, actor, data_json, prev_hash, h))
        prev_hash = h
    return out


def chain_next(
    prev_hash: str, seq: int, ts: float, type_: str, component: str, scope: str, actor: str, data_json: str
) -> str:
    """:func:`envelope_hash` of a row from its columns (verify, repair, a stored row's check)."""
    return chain_step(prev_hash, seq, ts, chain_head(type_, component, scope, actor), data_json)


class EventLineError(ValueError):
    """A line that is not ``TYPE:component:scope:{json}``; ``column`` is 1-based."""

    def __init__(self, message: str, column: int, line: str = "") -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column
        self.line = line


class EventHeader(BaseModel):
    """The validated head of an event line: the boundary model for injected events."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    component: str = Field(min_length=1)
    scope: str = Field(min_length=1)
    data: dict[str, Any]

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not _TYPE_RE.match(v):
            raise ValueError("event type must be UPPER_SNAKE_CASE")
        return v

    @field_validator("component", "scope")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be letters, digits, '_', '-' or '.'")
        return v


def _json_error_column(exc: json.JSONDecodeError, offset: int) -> int:
    return offset + exc.pos + 1


def parse_line(line: str) -> EventHeader:
    """Parse ``TYPE:component:scope:{json}``; raise EventLineError naming the column."""
    text = line.rstrip("\r\n")
    parts = text.split(":", 3)
    if len(parts) < 4:
        col = len(text) + 1
        raise EventLineError(f"expected TYPE:component:scope:{{json}}, found {len(parts) - 1} colon(s)", col, text)
    type_, component, scope, payload = parts
    offsets = [1, len(type_) + 2, len(type_) + len(component) + 3]
    for value, col, what in (
        (type_, offsets[0], "event type"),
        (component, offsets[1], "component"),
        (scope, offsets[2], "scope"),
    ):
        if not value:
            raise EventLineError(f"{what} is empty", col, text)
    if not _TYPE_RE.match(type_):
        bad = next((i for i, c in enumerate(type_) if not (c.isupper() or c.isdigit() or c == "_")), 0)
        raise EventLineError(f"event type {type_!r} must be UPPER_SNAKE_CASE", 1 + bad, text)
    for value, col, what in ((component, offsets[1], "component"), (scope, offsets[2], "scope")):
        if not _NAME_RE.match(value):
            bad = next((i for i, c in enumerate(value) if not (c.isascii() and (c.isalnum() or c in "_-."))), 0)
            raise EventLineError(f"{what} {value!r} has an invalid character {value[bad]!r}", col + bad, text)
    json_col = offsets[2] + len(scope) + 1
    data = _loads_lenient(payload, json_col, text)
    if not isinstance(data, dict):
        raise EventLineError("the payload must be a JSON object", json_col, text)
    return EventHeader(type=type_, component=component, scope=scope, data=data)


def _loads_lenient(payload: str, json_col: int, text: str) -> Any:
    try:
        return json.loads(payload)
    except json.JSONDecodeError as exc:
        first = exc
    # The seed writes ratios such as 19/20 bare; keep them as text.
    fixed = _RATIO_RE.sub(lambda m: json.dumps(m.group(1)), payload)
    if fixed != payload:
        try:
            return json.loads(fixed)
        except json.JSONDecodeError:
            pass
    raise EventLineError(f"invalid JSON: {first.msg}", _json_error_column(first, json_col - 1), text)


def format_line(type_: str, component: str, scope: str, data: dict[str, Any]) -> str:
    return f"{type_}:{component}:{scope}:{dumps_compact(data)}"


EVENT_LINE_RE = re.compile(r"^[A-Z][A-Z0-9_]*:[A-Za-z0-9_.\-]+:[A-Za-z0-9_.\-]+:\{")


def looks_like_event_line(line: str) -> bool:
    return bool(EVENT_LINE_RE.match(line.strip()))

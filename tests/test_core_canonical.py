"""The canonical encoding (hashed and stored) is byte-identical to the reference encoder.

``canonical_json`` encodes with orjson and hands what orjson would write differently
to the standard library's encoder; these tests hold the two to the same bytes on
generated payloads (unicode of every plane, control characters, lone surrogates,
floats of every magnitude with NaN and infinity, integers beyond 64 bits, nesting,
non-string keys) and on every event of a real run.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("orjson")

from core.events import (
    GENESIS_HASH,
    Event,
    canonical_encoding,
    canonical_envelope,
    canonical_json,
    chain_next,
    dumps_compact,
    encode_data,
    reference_canonical_json,
    reference_compact_json,
)
from core.session import memory_sim


def _reference_hash(prev: str, envelope: str) -> str:
    """The chain's formula as written down: SHA-256 of the previous hash followed by the envelope."""
    return hashlib.sha256((prev + envelope).encode("utf-8")).hexdigest()


TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | TEXT
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(TEXT, inner, max_size=5)
        | st.dictionaries(st.integers(-5, 5), inner, max_size=3)
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(JSONISH)
def test_generated_payloads_encode_to_the_reference_bytes(value: Any) -> None:
    """Hypothesis's own choices (its boundary values, and a shrunk example on a failure);
    the volume is the seeded corpus's (below), which covers the same kinds of value."""
    assert canonical_json(value) == reference_canonical_json(value)
    assert dumps_compact(value) == reference_compact_json(value)
    _assert_line_as_reference({"v": value})


def _assert_line_as_reference(data: dict[Any, Any]) -> bool:
    """``encode_data`` gives the canonical bytes, and an event flagged as it says (as the
    engine's emit flags it) gives the reference's line, whatever the data's key order.
    Returns the flag."""
    text, plain = encode_data(data)
    assert text == reference_canonical_json(data), data
    ev = Event(1, 0.0, "T", "c", "s", data, "x", plain)
    assert ev.line() == f"T:c:s:{reference_compact_json(data)}", data
    return plain


def test_an_event_line_is_the_reference_line_when_orjson_would_write_a_value_differently() -> None:
    """The flag says orjson's output was taken; where it was not (a float below 1e-4, an
    exponent, NaN, a huge integer, a non-string key), the line is the reference's too,
    and the flag is False (with it set, orjson's ``1e-5`` would be the line)."""
    for value in (1e-05, 1.5e-07, 2e-300, math.nan, math.inf, 2**70, {1: "a"}):
        data = {"task": "wf/t1", "agent": "a-1", "v": value}  # keys not in sorted order
        assert not _assert_line_as_reference(data), data
    assert _assert_line_as_reference({"task": "wf/t1", "agent": "a-1", "v": None, "p": 0.5, "e": "done"})
    forced = Event(1, 0.0, "T", "c", "s", {"v": 1e-05}, "x", True)
    assert forced.line() != f"T:c:s:{reference_compact_json({'v': 1e-05})}"  # the flag is what decides


def _random_float(rng: random.Random) -> float:
    kind = rng.randrange(7)
    if kind == 0:
        return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]  # any bit pattern, NaN included
    if kind == 1:
        return rng.random() * 10.0 ** rng.randint(-12, 3)
    if kind == 2:
        return rng.choice([0.0, -0.0, 1e-4, 9.99e-5, 1e-5, 1e16, 1e22, 2.0**53, math.inf, -math.inf, 0.1, 1 / 3])
    if kind == 3:
        return round(rng.uniform(-1e6, 1e6), rng.randint(0, 6))
    if kind == 4:
        return rng.uniform(-1e-3, 1e-3)  # where the shortest repr switches to an exponent
    return rng.uniform(0, 3600 * 48)


def _random_text(rng: random.Random, utf8: bool = False) -> str:
    """Text of every plane; with ``utf8`` none of the lone surrogates UTF-8 cannot hold."""
    pools = [
        "abcdefghijklmnopqrstuvwxyz_-/:. ",
        "éàüßçñøåæœ",
        "日本語中文한국어",
        "\U0001f600\U0001f680\U00010348",
        '"\\\n\r\t\b\f\x00\x01\x1f\x7f\u2028\u2029',
        *(() if utf8 else ("\ud800\udbff\udc00\udfff",)),  # lone surrogates
    ]
    if rng.random() < 0.2:  # any code point of any plane
        points = [rng.randrange(0x110000) for _ in range(rng.randint(1, 12))]
        return "".join(chr(c) for c in points if not (utf8 and 0xD800 <= c <= 0xDFFF))
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 16)))


def _random_value(rng: random.Random, depth: int = 0, utf8: bool = False) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None if rng.random() < 0.5 else rng.random() < 0.5
    if kind == 1:
        big = rng.getrandbits(rng.randint(64, 200)) * rng.choice((1, -1))
        return rng.choice([rng.randint(-1000, 1000), rng.getrandbits(63), -(2**63), 2**64 + rng.randint(0, 9), big])
    if kind in (2, 3):
        return _random_float(rng)
    if kind in (4, 5):
        return _random_text(rng, utf8)
    if kind == 6:
        return [_random_value(rng, depth + 1, utf8) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.2:  # integer keys (written as text, sorted as numbers)
        return {rng.randint(-5, 5): _random_value(rng, depth + 1, utf8) for _ in range(rng.randint(1, 3))}
    return {_random_text(rng, utf8): _random_value(rng, depth + 1, utf8) for _ in range(rng.randint(0, 5))}


@pytest.mark.slow
def test_a_hundred_thousand_varied_event_payloads_encode_to_the_reference_bytes() -> None:
    rng = random.Random(20261203)
    for i in range(100_000):
        data = {"task": f"wf_{i % 97}/t{i}", "n": i, "payload": _random_value(rng)}
        assert canonical_json(data) == reference_canonical_json(data), data
        assert dumps_compact(data) == reference_compact_json(data), data
        _assert_line_as_reference({"task": data["task"], "payload": data["payload"], "n": i})  # not sorted


def test_every_event_of_a_run_encodes_to_the_reference_bytes() -> None:
    events: list[Event] = []
    eng = memory_sim(demo=False, seed=11)
    eng.subscribe(events.append)
    from core.demo import build_demo

    build_demo(eng, seed=11, duration_scale=0.2)
    asyncio.run(eng.advance(3 * 3600))
    assert len(events) > 300
    prev = GENESIS_HASH
    assert sum(ev.plain for ev in events) > len(events) // 2  # emit flags what orjson encoded as is
    for ev in events:
        assert canonical_json(ev.data) == reference_canonical_json(ev.data), ev
        assert dumps_compact(ev.data) == reference_compact_json(ev.data), ev
        assert ev.line() == f"{ev.type}:{ev.component}:{ev.scope}:{reference_compact_json(ev.data)}", ev
        assert encode_data(ev.data) == (canonical_json(ev.data), ev.plain), ev
        # The emit path's one-step chain hash is the envelope's hash.
        data_json = canonical_json(ev.data)
        h = chain_next(prev, ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, data_json)
        assert h == _reference_hash(
            prev, canonical_envelope(ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, data_json)
        )
        prev = h
        envelope = [ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, ev.data]
        assert canonical_encoding(ev.seq, ev.ts, ev.type, ev.component, ev.scope, ev.actor, ev.data) == (
            reference_canonical_json(envelope)
        )


def test_a_null_is_the_reference_bytes_wherever_a_non_finite_float_hides() -> None:
    """orjson writes ``null`` for None and for NaN or infinity: data whose nulls are all
    None keeps orjson's text (the same bytes), data with a non-finite float at any depth
    and in any container orjson encodes (dict, list, tuple and their subclasses) is
    written by the reference encoder (``NaN``, ``Infinity``)."""
    from collections import OrderedDict, namedtuple

    from core.events import _finite

    class Tagged(list):  # type: ignore[type-arg]
        pass

    pair = namedtuple("pair", "a b")
    for bad in (math.nan, math.inf, -math.inf):
        holders = [
            bad,
            {"a": None, "b": bad},
            [None, [1, {"x": bad}]],
            {"t": (None, bad)},
            OrderedDict(z=None, y={"deep": [bad]}),
            {"l": Tagged([None, bad])},
            {"p": pair(None, bad)},
        ]
        for data in holders:
            assert not _finite(data), data
            assert canonical_json(data) == reference_canonical_json(data)
            assert dumps_compact(data) == reference_compact_json(data)
    for data in ({"a": None, "b": [None, 1.5, {"c": None}], "d": (0.0, -0.0, 1e300)}, None, [None], {"n": "null"}):
        assert _finite(data), data
        assert canonical_json(data) == reference_canonical_json(data)
        assert dumps_compact(data) == reference_compact_json(data)


def test_an_exponent_is_found_with_or_without_other_dashes() -> None:
    """The ``e-`` scan runs only on text holding a ``-``: a float orjson writes with a
    negative exponent is the only dash in some data, one of many in other data, and
    text with dashes but no exponent keeps orjson's bytes; every case is the reference."""
    for data in (
        {"agent": "agent_001", "x": 1.5e-7},
        {"x": 5e-324},
        {"agent": "bench-07", "task": "wf-1/t-2", "x": 2.5e-9},
        {"agent": "bench-07", "task": "wf-1/t-2", "x": 0.5},
        {"note": "see e-mail", "x": 1e-05},
        {"note": "see e-mail"},
        [{"b": -1.0, "a": [1e-300, -2]}],
    ):
        assert canonical_json(data) == reference_canonical_json(data), data
        assert dumps_compact(data) == reference_compact_json(data), data
        _assert_line_as_reference({"z": 1, "data": data})


def test_what_the_reference_refuses_is_refused() -> None:
    """No encoding where the reference has none: objects it cannot encode still raise."""
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int

    for bad in (Point(1), datetime.datetime(2026, 1, 1), {"k": object()}, {("a", 1): 2}):
        with pytest.raises(TypeError):
            reference_canonical_json(bad)
        with pytest.raises(TypeError):
            canonical_json(bad)
        with pytest.raises(TypeError):
            reference_compact_json(bad)
        with pytest.raises(TypeError):
            dumps_compact(bad)


def test_archived_tasks_encode_to_the_values_pydantic_writes() -> None:
    """An archive record's task list (``tasks_json``: orjson over the dataclasses) decodes to what
    pydantic's serializer writes, in the same field order; a value orjson cannot encode
    (an integer beyond 64 bits in a task's inputs) goes to pydantic's serializer."""
    import json

    from pydantic import TypeAdapter

    from core.models import Task, TaskContext, TaskStatus, tasks_json

    adapter = TypeAdapter(list[Task])
    rng = random.Random(7)
    tasks = [
        Task(
            id=f"w/t{i}",
            workflow="w",
            phase="p",
            specialization="x",
            depends_on=[f"w/t{j}" for j in range(i % 3)],
            duration_s=_random_float(rng),
            status=rng.choice(list(TaskStatus)),
            agent=rng.choice([None, "agent-1"]),
            attempts=i % 4,
            started_at=rng.choice([None, rng.random() * 1e4]),
            context=TaskContext(
                inputs={_random_text(rng, utf8=True): _random_value(rng, utf8=True) for _ in range(2)},
                progress=rng.random(),
                partial_results={"result": _random_value(rng, utf8=True)},
                last_output=[_random_text(rng, utf8=True)],
            ),
        )
        for i in range(300)
    ]
    text = tasks_json(tasks)
    ref = adapter.dump_json(tasks).decode()

    def same(a: Any, b: Any) -> bool:  # NaN equals itself here (pydantic and orjson both write null)
        if isinstance(a, float) and isinstance(b, float):
            return a == b or (math.isnan(a) and math.isnan(b))
        if isinstance(a, dict) and isinstance(b, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return type(a) is type(b) and a == b

    assert same(json.loads(text), json.loads(ref))
    big = [Task(id="w/b", workflow="w", phase="p", specialization="x", context=TaskContext(inputs={"n": 2**70}))]
    assert tasks_json(big) == adapter.dump_json(big).decode()


def test_the_one_step_chain_hash_is_the_envelopes_for_every_timestamp() -> None:
    """chain_step (per event) and chain_rows (a group commit's batch) reuse the text of a
    timestamp object they saw just before: the same object, never an equal one (0.0 and
    -0.0 are equal and written differently)."""
    from core.events import chain_head, chain_rows, chain_step

    head = chain_head("TASK_STARTED", "agent", "execution", "engine")
    prev = GENESIS_HASH
    stamps: list[Any] = [
        0.0,
        0.0,
        -0.0,
        -0.0,
        1.5,
        1e-7,
        math.nan,
        math.inf,
        3,
        2**70,
        None,
        0.1 + 0.2,
        0.30000000000000004,
    ]
    hashes = []
    for i, ts in enumerate(stamps + stamps[::-1]):
        h = chain_step(prev, i + 1, ts, head, "{}")
        assert h == _reference_hash(
            prev, canonical_envelope(i + 1, ts, "TASK_STARTED", "agent", "execution", "engine", "{}")
        )
        hashes.append(h)
        prev = h
    batch = [(i + 1, ts, "TASK_STARTED", "agent", "execution", "engine", "{}", head) for i, ts in enumerate(stamps)]
    rows = chain_rows(GENESIS_HASH, batch) + chain_rows(
        hashes[len(stamps) - 1],
        [
            (i + 1 + len(stamps), ts, "TASK_STARTED", "agent", "execution", "engine", "{}", head)
            for i, ts in enumerate(stamps[::-1])
        ],
    )
    assert [r[8] for r in rows] == hashes and [r[7] for r in rows] == [GENESIS_HASH, *hashes[:-1]]


def test_the_emit_encodes_and_flags_as_encode_data() -> None:
    """EventLog.emit writes encode_data out: the row it queues holds encode_data's text
    and the event its flag, for payloads of every kind (a change to one side that the
    other lacks fails here)."""
    from core.clock import VirtualClock
    from core.config import Config
    from core.engine import Engine

    eng = Engine(config=Config(), clock=VirtualClock())
    rng = random.Random(22)
    payloads: list[dict[Any, Any]] = [
        {"v": v} for v in (1e-05, 1.5e-07, 2e-300, math.nan, math.inf, -math.inf, 2**70, None, 0.5, "e-1", "\ud800")
    ]
    payloads += [{1: "a"}, {"task": "wf/t1", "agent": "a-1", "output": ["done"], "duration_s": 0.0}, {}]
    payloads += [{"task": f"t{i}", "payload": _random_value(rng)} for i in range(3000)]
    plain = 0
    for data in payloads:
        try:
            want = encode_data(data)
        except (TypeError, ValueError) as exc:  # refused by the reference encoder too: the emit refuses it
            with pytest.raises(type(exc)):
                eng.emit("PAYLOAD_SEEN", "test", "encoding", data)
            continue
        ev = eng.emit("PAYLOAD_SEEN", "test", "encoding", data)
        assert (eng.log.buffer[-1][6], ev.plain) == want, data
        plain += ev.plain
        eng.log.buffer.clear()
    assert 0 < plain < len(payloads)  # both ways were taken

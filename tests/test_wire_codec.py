"""The agent socket's lines are read and written by orjson where it gives what the
standard library gives, and by the standard library where it would not: a message
reaches the other end with the values ``json`` would have carried, whatever they are."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.runtimes.wire import LineFramer, decode, encode


def same(a: Any, b: Any) -> bool:
    """Equal values, a NaN equal to a NaN, and of the same types (1 is not 1.0)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


LINES = [
    b'{"t": "finished", "rc": 0, "output": [], "output_file": null, "elapsed_s": 0.001}',
    b'{"x": NaN, "y": Infinity, "z": -Infinity}',
    b'{"big": 1180591620717411303424, "low": -9223372036854775809, "u64": 18446744073709551615}',
    b'{"f": 1e400, "g": 0.10000000000000000555, "h": -0.0}',
    b'{"s": "\\ud800 lone", "e": "\\u00e9", "raw": "\xc3\xa9"}',
    b'{"dup": 1, "dup": 2}',
    '{"utf16": 1}'.encode("utf-16"),
]


@pytest.mark.parametrize("line", LINES)
def test_a_line_is_read_as_json_reads_it(line: bytes) -> None:
    assert same(decode(line), json.loads(line))
    assert same(decode(bytearray(line)), json.loads(line))


@pytest.mark.parametrize("line", [b'{"t": "x"', b"not json", b'{"a": 1} trailing', b'{"a": "\xff"}', b""])
def test_a_garbled_line_is_refused_as_json_refuses_it(line: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(line)
    with pytest.raises(ValueError):
        decode(line)


MESSAGES: list[dict[Any, Any]] = [
    {"t": "started", "pid": 1, "create_time": 1733350000.12, "limits": {"memory_mb": None, "nice": 5}},
    {"x": float("nan"), "y": None},
    {"i": float("inf"), "j": -float("inf")},
    {1: "int key", "s": "ok"},
    {"s": "\ud800"},
    {"b": 2**70, "n": -(2**64)},
    {"t": (1, None, "é"), "line": "a\nb"},
]


@pytest.mark.parametrize("msg", MESSAGES)
def test_a_message_is_written_as_one_line_that_reads_back_as_jsons_would(msg: dict[Any, Any]) -> None:
    data = encode(msg)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert same(decode(data), json.loads(json.dumps(msg)))
    assert same(LineFramer().feed(data)[0], json.loads(json.dumps(msg)))


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, categories=None)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_any_message_reaches_the_other_end_with_jsons_values(msg: dict[str, Any]) -> None:
    assert same(decode(encode(msg)), json.loads(json.dumps(msg)))


def test_a_line_nested_too_deeply_is_skipped_as_garbled_and_the_others_read() -> None:
    deep = b"[" * 100_000 + b"\n"
    with pytest.raises(ValueError):
        decode(deep)
    framer = LineFramer(len(deep) + 100)
    got = framer.feed(encode({"t": "started"}) + deep + encode({"t": "finished"}) + b"[" * 100_000)
    assert got == [{"t": "started"}, {"t": "finished"}]
    assert framer.end() == []  # an unterminated one too

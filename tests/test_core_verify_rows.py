"""How the whole verify judges one stored row: the fast decoder (orjson) never judges a
row otherwise than the reference decoder (the standard library's) would, and a file
whose row holds text that is not UTF-8 is reported at that row, not as a failed read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.events import GENESIS_HASH, canonical_json, chain_next
from core.session import open_sim
from core.verify import row_problem, verify_store

from .store_support import tamper


def _row(seq: int, data_json: str, prev: str = GENESIS_HASH) -> tuple[object, ...]:
    h = chain_next(prev, seq, 1.5, "NOTE", "engine", "system", "engine", data_json)
    return (seq, 1.5, "NOTE", "engine", "system", "engine", data_json, prev, h)


def test_payloads_orjson_reads_otherwise_are_judged_by_the_reference_decoder() -> None:
    for data in ({"n": 2**70}, {"n": -(2**64)}, {"x": float("nan")}, {"a": [1.5, "é", None]}):
        text = canonical_json(data)
        problem, got = row_problem(_row(1, text), 1, GENESIS_HASH)
        assert problem is None, (data, problem)
        assert canonical_json(got) == text and got.keys() == data.keys()
    problem, got = row_problem(_row(1, canonical_json({"n": 2**70})), 1, GENESIS_HASH)
    assert got == {"n": 2**70} and type(got["n"]) is int  # not orjson's float


def test_each_bad_row_is_named_as_before() -> None:
    good = _row(1, '{"a":1}')
    assert row_problem(good, 1, GENESIS_HASH) == (None, {"a": 1})
    assert row_problem(good, 2, GENESIS_HASH)[0] == "sequence gap: expected 2, found 1"
    assert row_problem(good, 1, "f" * 64)[0] == "previous-hash link broken"
    assert row_problem(_row(1, "{not json"), 1, GENESIS_HASH)[0] == "payload is not JSON"
    assert row_problem(_row(1, "null")[:6] + (None,) + good[7:], 1, GENESIS_HASH)[0] == "payload is not JSON"
    # Hashed as stored, but not the canonical text (key order, spacing): refused.
    for text in ('{"b":1,"a":2}', '{"a": 1}', '{"a":1.0e0}', '{"a":1,"a":2}'):
        assert row_problem(_row(1, text), 1, GENESIS_HASH)[0] == "hash does not match the row's content", text
    changed = good[:6] + ('{"a":2}',) + good[7:]
    assert row_problem(changed, 1, GENESIS_HASH)[0] == "hash does not match the row's content"
    assert (
        row_problem(good[:2] + (b"NOTE",) + good[3:], 1, GENESIS_HASH)[0] == "a column holds a value of the wrong type"
    )
    assert json.loads(good[6]) == {"a": 1}


def test_the_reference_decoder_reads_a_row_at_most_once_and_only_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson decodes every row; the standard library's decoder only a row orjson refuses
    or reads otherwise, once: a row it decided is never decoded by it again."""
    calls: list[str] = []
    reference = json.loads

    def counted(text, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(text)
        return reference(text, *a, **k)

    monkeypatch.setattr(json, "loads", counted)
    cases = [
        ('{"a":[1.5,"é",null]}', None, 0),  # what orjson reads as stored: never the reference decoder
        (canonical_json({"n": 2**70}), None, 1),  # beyond 64 bits: orjson reads a float
        (canonical_json({"x": float("nan")}), None, 1),  # NaN: orjson refuses
        ('{"a":1.0e0}', "hash does not match the row's content", 1),  # read otherwise, and not canonical
        ('{"x": NaN}', "hash does not match the row's content", 1),  # refused by orjson, and not canonical
        ("{not json", "payload is not JSON", 1),
    ]
    for text, verdict, decodes in cases:
        calls.clear()
        assert row_problem(_row(1, text), 1, GENESIS_HASH)[0] == verdict, text
        assert len(calls) == decodes, (text, calls)


async def test_text_that_is_not_utf8_is_a_fault_at_its_row(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    eng = await open_sim(db, seed=0, demo=True)
    await eng.advance(300.0)
    await eng.flush()
    try:
        head = eng.state.seq
        target = head // 2
        tamper(db, target, "data = CAST(X'7B2261223A22FF227D' AS TEXT)")
        rep = await verify_store(eng.store)  # type: ignore[arg-type]
        assert rep.first_bad_seq == target and rep.events == head
        assert [f.problem for f in rep.faults] == ["hash does not match the row's content"]
    finally:
        await eng.close()

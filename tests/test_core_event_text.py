"""An event whose emitter built its data with sorted keys prints its stored text as its line.

The bridge builds the hot task facts' data (assigned, started, completed) with their keys
in sorted order and says so to the emit, which keeps the canonical text on the event
(``Event.text``): the line reuses it rather than encoding the data again. The line must
still be the reference encoder's compact text of the data in its own order, so a
promise the data does not keep (or a payload holding another's dict) must not be kept.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

from core.clock import VirtualClock
from core.config import Config
from core.engine import Engine
from core.event_types import TASK_ASSIGNED, TASK_COMPLETED, TASK_STARTED
from core.events import Event, canonical_json, encode_data, reference_compact_json
from core.session import memory_sim
from tests.test_core_canonical import _random_value


def _reference_line(ev: Event) -> str:
    return f"{ev.type}:{ev.component}:{ev.scope}:{reference_compact_json(ev.data)}"


def _spec(wid: str, tasks: int, duration: float) -> dict[str, Any]:
    return {
        "id": wid,
        "allocation": {"cpu_cores": 2, "memory_gb": 4, "agents": 1},
        "phases": [
            {
                "name": "p",
                "tasks": [
                    {"id": f"t{i}", "specialization": "x", "duration_s": duration, "cpu": 0.5, "memory_gb": 0.5}
                    for i in range(tasks)
                ],
            }
        ],
    }


def test_task_facts_of_a_run_keep_their_stored_text_and_print_the_reference_line() -> None:
    events: list[Event] = []
    eng = memory_sim(demo=True, seed=5, duration_scale=0.2)
    eng.subscribe(events.append)
    asyncio.run(eng.advance(2 * 3600))
    facts = [ev for ev in events if ev.type in (TASK_ASSIGNED, TASK_STARTED, TASK_COMPLETED)]
    assert len(facts) > 100
    for ev in facts:
        if "result" not in ev.data:
            assert ev.text, ev  # the bridge's promise reached the event
    for ev in events:
        if ev.text:
            assert ev.text == canonical_json(ev.data), ev
            assert list(ev.data) == sorted(ev.data), ev
        assert ev.line() == _reference_line(ev), ev


def _sorted_at_every_depth(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _sorted_at_every_depth(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_sorted_at_every_depth(x) for x in v]
    return v


def test_promised_data_is_stored_as_encode_data_writes_it() -> None:
    """Data promised sorted is encoded without orjson's sorting: the row the emit queues holds
    encode_data's text and the event its flag (and that text), for payloads of every kind
    sorted at every depth (floats orjson writes otherwise, NaN, huge integers, surrogates)."""
    eng = Engine(config=Config(), clock=VirtualClock())
    rng = random.Random(23)
    odd: list[Any] = [1e-05, 1.5e-07, math.nan, math.inf, 2**70, None, 0.5, "e-1", "\ud800", [{"b": 1, "a": 2}]]
    payloads = [{"v": v} for v in odd] + [{"p": _random_value(rng), "t": f"t{i}"} for i in range(2000)]
    kept = 0
    for raw in payloads:
        data = _sorted_at_every_depth(raw)
        try:
            want = encode_data(data)
        except (TypeError, ValueError):
            continue  # refused by the reference encoder: the emit refuses it (test_core_canonical)
        ev = eng.log.emit("PAYLOAD_SEEN", "test", "encoding", data, sorted_keys=True)
        assert (eng.log.buffer[-1][6], ev.plain) == want, data
        assert ev.text == want[0], data
        assert ev.line() == _reference_line(ev), data
        kept += ev.plain
        eng.log.buffer.clear()
    assert 0 < kept < len(payloads)


def test_data_without_the_promise_prints_in_its_own_key_order() -> None:
    eng = memory_sim(demo=False)
    ev = eng.emit(TASK_STARTED, "agent", "execution", {"task": "none/t", "agent": "a"})
    assert ev.text == ""
    assert ev.line() == 'TASK_STARTED:agent:execution:{"task":"none/t","agent":"a"}'


def test_a_result_of_its_own_key_order_is_printed_as_given() -> None:
    """A completion with a result (any dict, in its own order) is not promised sorted."""
    eng = memory_sim(demo=False)
    events: list[Event] = []
    eng.subscribe(events.append)
    eng.create_pool("p", ["x"], 0, 1)
    eng.add_agent("p")
    eng.create_workflow(_spec("w", 1, 100.0))
    eng.start_workflow("w")
    asyncio.run(eng.advance(1))
    started = next(ev for ev in events if ev.type == TASK_STARTED)
    assert started.text and started.line() == _reference_line(started)
    eng.bridge.task_finished(started.data["agent"], started.data["task"], ["out"], {"z": 1, "a": {"y": 2, "b": 3}})
    asyncio.run(eng.flush())
    done = next(ev for ev in events if ev.type == TASK_COMPLETED)
    assert done.text == ""
    assert done.line().endswith('"result":{"z":1,"a":{"y":2,"b":3}},"task":"w/t0","workflow_id":"w"}')
    assert done.line() == _reference_line(done)


def test_a_kept_text_without_its_head_still_prints_the_header() -> None:
    ev = Event(1, 0.0, "T", "c", "s", {"a": 1}, text='{"a":1}')
    assert ev.line() == 'T:c:s:{"a":1}'


def test_a_type_emitted_under_other_headers_keeps_each_ones_head() -> None:
    """The emit keeps each type's last header and compares it by identity: a type emitted
    with another component, scope or actor gets that header's line and envelope piece, and
    a header that is not valid is refused after a valid one of the same type."""
    import pytest
    from pydantic import ValidationError

    from core.events import chain_head

    eng = Engine(config=Config(), clock=VirtualClock())
    headers = [("agent", "execution", None), ("network", "agent_coordination", None), ("agent", "execution", "merge")]
    for _ in range(2):
        for comp, scope, actor in headers:
            ev = eng.log.emit(TASK_STARTED, comp, scope, {"agent": "a", "task": "w/t"}, actor)
            assert ev.line() == f'TASK_STARTED:{comp}:{scope}:{{"agent":"a","task":"w/t"}}'
            assert (ev.component, ev.scope, ev.actor) == (comp, scope, actor or "engine")
            row = eng.log.buffer[-1]
            assert row[7] == chain_head("TASK_STARTED", comp, scope, actor or "engine")
    seq = eng.state.seq
    with pytest.raises(ValidationError):
        eng.log.emit(TASK_STARTED, "bad component", "execution", {})
    assert eng.state.seq == seq

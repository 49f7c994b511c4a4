"""EventLog.emit builds each Event by setting its slots: every field an Event declares is set."""

from __future__ import annotations

from dataclasses import fields

import pytest

from core.clock import VirtualClock
from core.engine import Engine, EngineError
from core.event_types import TASK_COMPLETED
from core.events import Event


def test_an_emitted_event_holds_every_declared_field() -> None:
    eng = Engine(clock=VirtualClock(5.0))
    heard: list[Event] = []
    eng.subscribe(heard.append)
    eng.create_pool("p", ["x"], 0, 1)
    assert heard, "the memory engine's subscribers hear of the event at once"
    ev = heard[0]
    values = {f.name: getattr(ev, f.name) for f in fields(Event)}  # an unset slot raises AttributeError
    assert Event(**values) == ev
    assert (ev.seq, ev.ts, ev.actor, ev.plain) == (1, 5.0, eng.actor, True)
    assert ev.line_head == f"{ev.type}:{ev.component}:{ev.scope}:" and ev.line().startswith(ev.line_head + "{")
    assert Event(**{**values, "line_head": ""}).line() == ev.line(), "without the kept head: the same line"


def test_an_event_its_fold_rejects_is_not_recorded_nor_heard() -> None:
    eng = Engine(clock=VirtualClock())
    heard: list[Event] = []
    eng.subscribe(heard.append)
    with pytest.raises(EngineError) as caught:
        eng.emit(TASK_COMPLETED, "agent", "execution", {"task": "none/t", "agent": "a"})
    assert caught.value.code == "EVENT_REJECTED"
    assert heard == [] and eng.state.seq == 0 and eng.log.buffer == [] and eng.log.uncommitted == []

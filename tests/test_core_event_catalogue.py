"""The event catalogue: one declaration gives a type its fold, payload check, severity
and summary. A toy type declared here, and nowhere else, is emitted, folded (also on
replay), graded and summarised; undeclared, the same event is only counted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.engine import Engine, EngineError
from core.event_data import EventData
from core.event_types import EVENTS, TASK_COMPLETED, EventType, known_types, severity_of, summarise
from core.events import Event, EventHeader, Severity
from core.projection import State
from core.session import memory_sim


class ToyPinged(EventData):
    pings: int


def _fold_toy(s: State, ev: Event) -> None:
    s.settings["toy_pings"] = s.settings.get("toy_pings", 0) + ev.data["pings"]


TOY_PINGED = EventType(
    "TOY_PINGED",
    "toy",
    payload=ToyPinged,
    fold=_fold_toy,
    severity=Severity.HIGH,
    summary=lambda ev: f"toy pinged {ev.data['pings']} times",
)


def test_a_toy_type_declared_once_is_emitted_folded_graded_and_summarised() -> None:
    with EVENTS.declared(TOY_PINGED):
        eng = memory_sim(demo=False)
        ev = eng.emit(TOY_PINGED, "toy", "test", {"pings": 3})
        assert type(ev.type) is str and ev.type == "TOY_PINGED"
        assert eng.state.settings["toy_pings"] == 3
        assert "TOY_PINGED" not in eng.state.observed
        assert severity_of(ev) is Severity.HIGH and severity_of(ev).at_least("medium")
        assert not severity_of(ev).at_least(Severity.CRITICAL)
        assert summarise(ev) == "toy pinged 3 times"
        assert "TOY_PINGED" in known_types()
        # Injected from outside, its payload model is the boundary: bad data changes nothing.
        before = (eng.state.state_hash(), eng.state.seq)
        with pytest.raises(EngineError) as exc:
            eng.inject(EventHeader(type="TOY_PINGED", component="toy", scope="test", data={"pings": "many"}))
        assert exc.value.code == "INVALID_EVENT" and "data.pings" in exc.value.message
        assert (eng.state.state_hash(), eng.state.seq) == before
        eng.inject(EventHeader(type="TOY_PINGED", component="toy", scope="test", data={"pings": 2}))
        assert eng.state.settings["toy_pings"] == 5
    assert "TOY_PINGED" not in known_types()
    # Undeclared, the same event folds into nothing: it is only counted as observed.
    eng = memory_sim(demo=False)
    ev = eng.emit("TOY_PINGED", "toy", "test", {"pings": 3})
    assert "toy_pings" not in eng.state.settings and eng.state.observed["TOY_PINGED"] == 1
    assert severity_of(ev) is Severity.INFO


async def test_a_toy_type_folds_again_on_replay(tmp_path: Path) -> None:
    db = tmp_path / "toy.db"
    with EVENTS.declared(TOY_PINGED):
        eng = await Engine.open(db)
        eng.emit(TOY_PINGED, "toy", "test", {"pings": 4})
        h = eng.state.state_hash()
        await eng.close()
        again = await Engine.open(db)
        try:
            assert again.state.settings["toy_pings"] == 4 and again.state.state_hash() == h
        finally:
            await again.close()


def test_a_type_cannot_be_declared_twice() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        EVENTS.declare(EventType("TASK_COMPLETED", "agent"))
    assert EVENTS.get("TASK_COMPLETED") is TASK_COMPLETED


def test_severity_ranks_answer_x_or_worse() -> None:
    assert Severity.or_worse("high") == (Severity.HIGH, Severity.CRITICAL)
    assert Severity.or_worse(Severity.INFO) == tuple(Severity)
    assert Severity.CRITICAL.at_least("high") and not Severity.LOW.at_least("medium")
    with pytest.raises(ValueError):
        Severity.or_worse("dire")
    # The event's own grading wins over its type's.
    ev = Event(1, 0.0, "AGENT_POOL_FAILURE", "agent_pool", "x", {"severity": "medium"})
    assert severity_of(ev) is Severity.MEDIUM
    assert severity_of(Event(1, 0.0, "AGENT_POOL_FAILURE", "agent_pool", "x", {})) is Severity.CRITICAL


def test_summaries_read_as_sentences() -> None:
    done = Event(9, 300.0, "TASK_COMPLETED", "agent", "execution", {"task": "wf_2/extract_1", "agent": "agent_011"})
    assert summarise(done) == "agent_011 finished wf_2/extract_1"
    timed = Event(9, 300.0, "TASK_COMPLETED", "agent", "execution", {**done.data, "duration_s": 252.4})
    # started at 47.6 (its row 00:00:47), ended at 300.0 (00:05:00): the figure is the rows' difference
    assert summarise(timed) == "agent_011 finished wf_2/extract_1 in 4m13s"
    odd = Event(9, 300.0, "TASK_COMPLETED", "agent", "execution", {"agent": "agent_011"})
    assert summarise(odd) == "execution: agent=agent_011"  # a payload its summary cannot read: the default
    unknown = Event(1, 0.0, "SOMETHING_ELSE", "x", "scope", {"a": 1, "b": [1, 2], "c": {"d": 1}})
    assert summarise(unknown) == "scope: a=1, b=[1, 2], c=1 fields"


async def test_a_run_summarises_every_event_it_records() -> None:
    eng = memory_sim()
    events: list[Event] = []
    eng.subscribe(events.append)
    await eng.advance(900)
    done = [ev for ev in events if ev.type == TASK_COMPLETED]
    assert done, "the demo completed no task in 15 minutes"
    for ev in done:
        assert re.fullmatch(r"agent_\w+ finished \S+/\S+ in \d+(\.\d)?[hms]\S*", summarise(ev)), summarise(ev)
    for ev in events:
        line = summarise(ev)
        assert line and "\n" not in line
        declared = EVENTS.get(ev.type)
        assert declared is not None, f"{ev.type} is emitted but not declared"


_REPO = Path(__file__).resolve().parent.parent
_CODES = {"WORKFLOW_FROZEN"}
"""Declared event types that are also error codes: as a ``*Error(...)``'s code or a key of
``core/commands/responses.py``'s hints they name the error, not the event."""


def _type_strings(source: str, names: set[str], codes: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, name) of every string literal naming an event type, outside the codes an
    error raises."""
    import ast

    tree = ast.parse(source)
    as_code: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if fname.endswith("Error"):
                as_code.add(id(node.args[0]))
        if isinstance(node, ast.Dict):
            as_code.update(id(k) for k in node.keys if isinstance(k, ast.Constant) and k.value in codes)
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names and id(n) not in as_code
    ]


def test_code_names_event_types_by_their_declarations() -> None:
    """``ev.type == TASK_COMPLETED``, not ``== "TASK_COMPLETED"``: a renamed or removed
    type then fails at import, not silently at run time."""
    names = EVENTS.names()
    found = []
    for pkg in ("core", "tui", "opsdeck"):
        for path in sorted((_REPO / pkg).rglob("*.py")):
            if path.name == "event_types.py":  # where each name is declared, once
                continue
            rel = path.relative_to(_REPO).as_posix()
            hits = _type_strings(path.read_text(encoding="utf-8"), names, frozenset(_CODES))
            found += [f"{rel}:{line}: {name!r}" for line, name in hits]
    assert not found, "event types named by a string instead of their declaration:\n" + "\n".join(found)


def test_the_type_string_check_sees_a_string() -> None:
    """The check itself: a compare and a type list are found; an error's code is not."""
    src = (
        'if ev.type == "TASK_COMPLETED": pass\n'
        'read(types=["AGENT_ERROR"])\n'
        'raise CommandError("WORKFLOW_FROZEN", "frozen")\n'
        'HINTS = {"WORKFLOW_FROZEN": ["/x"]}\n'
    )
    names = {"TASK_COMPLETED", "AGENT_ERROR", "WORKFLOW_FROZEN"}
    assert sorted(_type_strings(src, names, frozenset(_CODES))) == [(1, "TASK_COMPLETED"), (2, "AGENT_ERROR")]


def test_a_detectors_finding_reads_in_words_and_shows_what_it_cannot_read() -> None:
    data = {
        "incident_id": "INC-0007",
        "error_type": "cpu_and_memory_overload",
        "system_utilization": {"cpu": 97.5, "memory": 91.0, "agents": "18/20"},
        "affected_workflows": ["wf_1", "wf_2", "wf_3", "wf_4"],
        "severity": "critical",
    }
    line = summarise(Event(1, 0.0, "RESOURCE_EXHAUSTION", "system", "global", data, "detector"))
    assert line == (
        "INC-0007: cpu and memory overload; cpu 97.5%, memory 91%, agents 18/20; "
        "workflows affected 4 (wf_1, wf_2, wf_3 and 1 more)"
    )
    assert "=" not in line and "_type" not in line
    trend = {"incident_id": "INC-0008", "affected_metrics": ["efficiency"], "degradation_rate": "9_percent_over_30m"}
    assert summarise(Event(2, 0.0, "PERFORMANCE_DEGRADATION_DETECTED", "performance", "trend", trend, "detector")) == (
        "INC-0008: efficiency degrading by 9% over 30m"
    )
    # a key the summary has no words for is shown, not hidden
    odd = summarise(Event(3, 0.0, "COMMUNICATION_FAILURE", "network", "mesh", {"hops": 4}, "detector"))
    assert odd == "mesh: hops=4"


def test_a_plans_announcement_and_conclusion_read_in_words_with_their_basis() -> None:
    announced = {
        "plan_id": "PLAN-0003",
        "incident_id": "INC-0002",
        "strategy": "dependency_aware_redistribution",
        "estimated_time": "2m",
        "estimate_basis": "history: 3 past recoveries; median",
    }
    line = summarise(Event(1, 0.0, "RECOVERY_PLAN_GENERATED", "coordination", "dependency_recovery", announced, "x"))
    assert line == "PLAN-0003 for INC-0002: dependency aware redistribution; estimated 2m (history: 3 past recoveries)"
    done = {"incident_id": "INC-0002", "workflows_recovered": 2, "tasks_resumed": 5, "recovery_time": "40s"}
    line = summarise(Event(2, 0.0, "RECOVERY_VALIDATION_COMPLETED", "coordination", "validation", done, "x"))
    assert line == "INC-0002: 2 workflow(s) recovered; 5 task(s) resumed; in 40s from the plan's first acting step"
    # nothing it has words for: the key fields, as for any event
    bare = summarise(Event(3, 0.0, "DATA_RECOVERY_COMPLETED", "coordination", "recovery", {"odd": 1}, "x"))
    assert bare == "recovery: odd=1"

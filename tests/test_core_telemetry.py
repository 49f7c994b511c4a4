"""Telemetry.task_done records what three Telemetry.record calls per completed task did."""

from __future__ import annotations

import ast

from core.telemetry import COMPLETIONS, TASK_DONE_METRICS, Telemetry

from .conftest import REPO


def _by_record(now: float, took: float | None, expected: float) -> Telemetry:
    tel = Telemetry()
    if took is not None:
        tel.record(now, "response_time", "system", took)
        if took > 0 and expected > 0:
            tel.record(now, "efficiency", "system", min(expected / took, 1.5))
    tel.record(now, "completed", "system", 1.0, persist=False)
    return tel


def _state(tel: Telemetry) -> tuple[object, ...]:
    return (
        [(k, list(s.points)) for k, s in tel.series.items()],
        list(tel.pending_rows),
    )


def test_a_completed_task_is_recorded_as_record_did() -> None:
    for took, expected in ((2.0, 1.0), (0.5, 1.0), (0.0, 1.0), (3.0, 0.0), (None, 1.0)):
        tel = Telemetry()
        tel.task_done(10.0, took, expected)
        tel.task_done(11.0, took, expected)  # the series exist the second time
        ref = _by_record(10.0, took, expected)
        for k, s in _by_record(11.0, took, expected).series.items():
            ref.series[k].points.extend(s.points)
        for key, flat in _by_record(11.0, took, expected).pending.items():
            ref.pending[key] += flat
        assert _state(tel) == _state(ref)


def test_a_task_without_a_start_or_a_duration_stores_no_time_or_efficiency() -> None:
    tel = Telemetry()
    tel.task_done(5.0, None, 1.0)
    assert tel.pending_rows == []  # nothing to store: the completion count is not stored
    assert list(tel.get("completed").points) == [(5.0, 1.0)]
    tel.task_done(6.0, 0.0, 1.0)
    assert tel.pending_rows == [(6.0, "response_time", "system", 0.0)]  # no efficiency of a zero time
    assert list(tel.get("efficiency").points) == []


def test_the_newest_samples_held_are_dropped_across_series_and_put_back_ones_go_first() -> None:
    tel = Telemetry()
    for t in range(6):
        tel.record(float(t), "a" if t % 2 else "b", "system", float(t))
    tel.drop_newest(3)  # 5 (a), 4 (b), 3 (a)
    assert sorted(tel.pending_rows) == [(0.0, "b", "system", 0.0), (1.0, "a", "system", 1.0), (2.0, "b", "system", 2.0)]
    taken = tel.take_rows()
    tel.record(9.0, "a", "system", 9.0)
    tel.put_back(taken)  # a refused commit: held again before what came since
    assert tel.pending == {("b", "system"): [0.0, 0.0, 2.0, 2.0], ("a", "system"): [1.0, 1.0, 9.0, 9.0]}
    tel.drop_newest(10)
    assert tel.pending == {} and tel.pending_count() == 0


def test_task_done_adds_to_the_catalogued_series_and_stores_only_the_stored_ones() -> None:
    """task_done writes the series TASK_DONE_METRICS names, in its order, storing those it
    marks stored: the same as record() called for each (efficiency only with a response
    time and an expected duration, both over zero)."""
    tel, ref = Telemetry(), Telemetry()
    for now, took, expected in ((10.0, 4.0, 2.0), (11.0, None, 2.0), (12.0, 0.0, 2.0), (13.0, 1.0, 9.0)):
        tel.task_done(now, took, expected)
        values = {"response_time": took, "completed": 1.0}
        if took is not None and took > 0 and expected > 0:
            values["efficiency"] = min(expected / took, 1.5)
        for name, stored in TASK_DONE_METRICS:
            if values.get(name) is not None:
                ref.record(now, name, "system", values[name], persist=stored)
    assert (
        tel.pending_rows
        == ref.pending_rows
        == [
            (10.0, "response_time", "system", 4.0),
            (12.0, "response_time", "system", 0.0),
            (13.0, "response_time", "system", 1.0),
            (10.0, "efficiency", "system", 0.5),
            (13.0, "efficiency", "system", 1.5),
        ]
    )
    assert {k: list(s.points) for k, s in tel.series.items()} == {k: list(s.points) for k, s in ref.series.items()}
    assert sorted(tel.series) == sorted((name, "system") for name, _ in TASK_DONE_METRICS)


def test_the_completions_series_is_named_by_its_declaration_only() -> None:
    """Whoever counts or reads completions (a task's end, a partition's merge, the
    throughput) names the series by :data:`core.telemetry.COMPLETIONS`, not a literal."""
    spelt = []
    for path in sorted((REPO / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("record", "get")
                and ast.unparse(node.func.value).split(".")[-1] in ("telemetry", "tel")
            ) and any(isinstance(a, ast.Constant) and a.value == COMPLETIONS for a in node.args):
                spelt.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert spelt == []

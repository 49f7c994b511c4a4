"""A monitor's alert (RESOURCE_THRESHOLD) is raised once per upward crossing of its
limit, for the continuous-learning trigger and a windowed monitor alike
(``core.commands.monitoring.alert_on_crossing``): not on every sample above it, not
at or under the limit, and again after the metric fell back and rose again."""

from __future__ import annotations

from typing import Any

from core.commands.monitoring import alert_on_crossing


async def test_an_alert_is_raised_once_per_upward_crossing() -> None:
    from core.session import memory_sim

    eng = memory_sim(seed=0, demo=False)
    seen: list[Any] = []
    eng.subscribe(lambda ev: seen.append(ev) if ev.type == "RESOURCE_THRESHOLD" else None)
    over: dict[tuple[str, str], bool] = {}
    alert_on_crossing(eng, over, "monitoring.post_emergency", "post_emergency", "cpu", "cpu_pct", 60.0)
    assert seen == [] and over == {}, "no sample yet: nothing to compare"
    said = []
    for t, value in enumerate((50.0, 60.0, 70.0, 75.0, 40.0, 95.0, 96.0)):
        eng.telemetry.record(float(t), "cpu_pct", "system", value)
        alert_on_crossing(eng, over, "monitoring.post_emergency", "post_emergency", "cpu", "cpu_pct", 60.0)
        said.append(len(seen))
    assert said == [0, 0, 1, 1, 1, 2, 2], "at the limit is not over it; one alert per crossing"
    assert [(e.data["value"], e.data["severity"]) for e in seen] == [(70.0, "medium"), (95.0, "high")]
    assert {(e.data["monitor"], e.data["metric"], e.data["threshold"]) for e in seen} == {
        ("post_emergency", "cpu", 60.0)
    }
    # Another monitor of the same metric remembers its own crossing.
    alert_on_crossing(eng, over, "auto_optimization", "auto_optimization", "cpu", "cpu_pct", 80.0)
    assert [e.data["monitor"] for e in seen[2:]] == ["auto_optimization"]
    await eng.close()

"""Analyses take a time window as operators type it (time_period, time_horizon, since,
window: "1h", "30m", "PT2H"), compute over that window only, and say the window used;
a bad window is a clear error that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.commands import run_command
from core.session import memory_sim, open_sim


async def _spiked() -> Any:
    """Two simulated hours: a heavy load spike during the first, none in the second."""
    eng = memory_sim(seed=0)
    eng.runtime.load_spike(6.0, 8.0, 3600.0)  # type: ignore[union-attr]
    await eng.advance(7200)
    return eng


def _system(resp: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in resp["result"]["findings"] if f["analysis"] == "utilisation" and f["subject"] == "system")


@pytest.mark.parametrize(
    ("payload", "field", "secs"),
    [
        ({"time_period": "30m"}, "time_period", 1800.0),
        ({"window": "PT2H"}, "window", 7200.0),
        ({"since": "1h"}, "since", 3600.0),
        ({"time_horizon": "PT45M"}, "time_horizon", 2700.0),
    ],
)
async def test_a_window_chooses_the_samples_an_analysis_uses(payload: dict[str, Any], field: str, secs: float) -> None:
    eng = await _spiked()
    now = eng.clock.now()
    r = await run_command(eng, f"/resource-manager analyze-utilization '{json.dumps(payload)}'")
    assert r["status"] == "success", r
    w = r["result"]["window"]
    assert w["given"] and w["field"] == field and w["seconds"] == secs and w["to"] == now
    assert "utilisation" in w["applies_to"]
    ev = _system(r)["evidence"]
    inside = eng.telemetry.get("cpu_pct").since(now - secs)
    assert ev["cpu_pct"]["samples"] == len(inside) > 0
    assert ev["cpu_pct"]["mean"] == pytest.approx(sum(v for _, v in inside) / len(inside), abs=0.01)


async def test_the_window_changes_the_inputs_and_the_answer() -> None:
    eng = await _spiked()
    last_30m = _system(await run_command(eng, '/resource-manager analyze-utilization \'{"time_period": "30m"}\''))
    last_2h = _system(await run_command(eng, '/resource-manager analyze-utilization \'{"time_period": "2h"}\''))
    a, b = last_30m["evidence"], last_2h["evidence"]
    assert b["memory_pct"]["samples"] > a["memory_pct"]["samples"]
    # the spike (first hour) is inside two hours, not inside the last half hour
    assert b["memory_pct"]["peak"] > a["memory_pct"]["peak"] + 20
    without = _system(await run_command(eng, "/resource-manager analyze-utilization"))
    assert "window_s" not in without["evidence"], "no window: the current figures, as before"


async def test_failures_in_a_window_leave_out_older_ones(tmp_path: Path) -> None:
    eng = await open_sim(tmp_path / "f.db", seed=0, demo=True)
    try:
        await eng.advance(300)
        busy = sorted(a.id for a in eng.state.live_agents() if a.current_task)[0]
        eng.runtime.fail_agent(busy, "crash")  # type: ignore[union-attr]
        await eng.advance(3 * 3600)
        recent = await run_command(eng, '/workflow-recovery root-cause \'{"since": "30m"}\'')
        whole = await run_command(eng, "/workflow-recovery root-cause")
        assert recent["status"] == whole["status"] == "success", (recent, whole)
        assert whole["result"]["events"] >= 1
        assert recent["result"]["window"]["seconds"] == 1800.0
        assert all(e["ts"] >= eng.clock.now() - 1800 for e in recent["result"]["chain"])
        assert len(recent["result"]["chain"]) < len(whole["result"]["chain"])
    finally:
        await eng.close()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"time_period": "soon"}, ["time_period", "PT2H"]),
        ({"window": "P"}, ["window"]),
        ({"since": "0m"}, ["longer than 0"]),
        ({"time_period": "1h", "window": "2h"}, ["one time window"]),
        ({"time_period": "40d"}, ["30 days"]),
    ],
)
async def test_a_bad_window_is_a_clear_error_that_changes_nothing(payload: dict[str, Any], words: list[str]) -> None:
    eng = await _spiked()
    h, seq = eng.state.state_hash(), eng.state.seq
    r = await run_command(eng, f"/resource-manager analyze-utilization '{json.dumps(payload)}'")
    assert r["status"] == "error" and r["error"]["code"] == "INVALID_PAYLOAD", r
    for w in words:
        assert w in r["error"]["message"], r["error"]["message"]
    assert eng.state.state_hash() == h and eng.state.seq == seq


async def test_an_operation_that_acts_on_now_refuses_a_window() -> None:
    eng = await _spiked()
    r = await run_command(eng, '/resource-manager agent-reallocation \'{"time_period": "1h"}\'')
    assert r["status"] == "error" and "no time window" in r["error"]["message"]

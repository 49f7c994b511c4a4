"""Usage on the local runtime: real processes (examples/fake_agent.py) print the three
formats; the host reads them and the engine sums them per task, agent, workflow, pool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.incidents.manager import IncidentManager
from tests.local_harness import PY, drive, header, open_text, phased_workflow_toml, task_toml, wf_status

REPO = Path(__file__).resolve().parents[1]
AGENT = str(REPO / "examples" / "fake_agent.py")


def task(tid: str, *args: str) -> tuple[str, list[str]]:
    """A phase of its own (named after the task) with one fake agent's task."""
    return tid, [task_toml(tid, [PY, AGENT, "--interval", "0.05", *args], "shell", depends_on=[])]


def workflow(wid: str, *phases: tuple[str, list[str]], budget: dict[str, int | float]) -> str:
    return phased_workflow_toml(
        wid, dict(phases), priority=50, allocation={"cpu_cores": 2, "memory_gb": 2, "agents": 2}, budget=budget
    )


@pytest.mark.slow
async def test_usage_of_the_three_formats_is_summed_per_workflow(tmp_path: Path) -> None:
    common = ("--turns", "3", "--input-tokens", "1000", "--output-tokens", "100", "--cost", "0.02")
    text = header() + workflow(
        "mixed",
        task("claude", "--format", "claude", *common),
        task("codex", "--format", "codex", *common, "--cached-tokens", "500"),
        task("opsdeck", "--format", "opsdeck", *common),
        task(
            "bad",
            "--format",
            "opsdeck",
            "--turns",
            "1",
            "--malformed",
            "3",
            "--input-tokens",
            "7",
            "--output-tokens",
            "0",
            "--cost",
            "0",
        ),
        budget={"tokens": 1000000, "cost_usd": 10.0},
    )
    engine, runtime, rec = await open_text(tmp_path / "u.db", text, tmp_path)
    mgr = IncidentManager(engine, approve_mode="auto")
    try:

        def done() -> bool:
            pumps.append(asyncio.get_running_loop().create_task(mgr.pump()))
            return wf_status(engine, "mixed") == "completed"

        pumps: list[asyncio.Task[None]] = []
        await drive(engine, done, timeout=60)
        await asyncio.gather(*pumps)
        led = engine.state.usage
        per = {k.split("/")[1]: v.total for k, v in led.tasks.items()}
        assert (per["claude"].input_tokens, per["claude"].output_tokens, per["claude"].cost_usd) == (3000, 300, 0.06)
        assert (per["codex"].input_tokens, per["codex"].cached_input_tokens, per["codex"].cost_usd) == (4500, 1500, 0.0)
        assert (per["opsdeck"].input_tokens, per["opsdeck"].output_tokens, per["opsdeck"].cost_usd) == (3000, 300, 0.06)
        assert per["bad"].input_tokens == 7, "the readable line of a task with unreadable ones still counts"
        wf = led.workflows["mixed"]
        assert wf.input_tokens == 3000 + 4500 + 3000 + 7
        assert wf.output_tokens == 300 + 300 + 300
        assert round(wf.cost_usd, 6) == 0.12
        assert led.pools["workers"].tokens == wf.tokens
        assert sum(s.tokens for s in led.agents.values()) == wf.tokens
        ignored = rec.of("USAGE_LINES_IGNORED")
        assert led.ignored_lines == 3 and sum(e.data["count"] for e in ignored) == 3
        assert ignored[0].data["task"] == "mixed/bad" and ignored[0].data["reason"]
        # Under its budget: no warning, no breach, no incident, nothing paused.
        assert not rec.of("BUDGET_WARNING") and not rec.of("BUDGET_EXCEEDED")
        assert engine.state.incidents == {} and not rec.of("TASK_PAUSED")
    finally:
        await runtime.shutdown()
        await engine.close()

"""Usage where the operator reads it: the panes (tokens/cost column, header budget gauge),
``/resource-manager status`` and ``/metrics``; budgets set by command."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.commands import run_command
from core.engine import Engine
from core.host.metrics import exposition, registry_for
from core.models import TaskStatus
from core.session import memory_sim
from core.usage.models import UsageReport
from tests.console_support import make_app, settle
from tui.widgets.live_list import Pane


def _spend_some(eng: Engine, tokens: int, cost: float) -> str:
    t = next(t for t in eng.state.tasks.values() if t.status is TaskStatus.RUNNING)
    assert t.agent is not None
    eng.spend.record(t.agent, t.id, t.attempts, UsageReport(input_tokens=tokens, output_tokens=0, cost_usd=cost))
    return t.workflow


def _scrape(eng: Engine) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(exposition(registry_for(eng)).decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_budget_commands_status_and_metrics() -> None:
    eng = memory_sim(seed=0)
    await eng.advance(600)
    wf = _spend_some(eng, 12_000, 0.5)
    res = await run_command(
        eng, f'/resource-manager allocate {wf} \'{{"budget": {{"tokens": 10000, "cost_usd": 2}}}}\''
    )
    assert res["status"] == "success", res
    st = eng.state.usage.budget_of("workflow", wf)
    assert st is not None and st.exceeded, "a budget set under what is spent is reached at once"
    bad = await run_command(eng, f"/resource-manager raise-budget {wf} '{{\"tokens\": 11000}}'")
    assert bad["status"] == "error" and bad["error"]["code"] == "NOT_A_RAISE"
    assert eng.state.usage.budget_of("workflow", wf).budget.tokens == 10000  # type: ignore[union-attr]
    nope = await run_command(eng, '/resource-manager allocate \'{"pool": "no_such_pool", "budget": {"tokens": 5}}\'')
    assert nope["status"] == "error" and nope["error"]["code"] == "POOL_NOT_FOUND"
    none = await run_command(eng, f"/resource-manager allocate {wf} '{{\"budget\": {{}}}}'")
    assert none["status"] == "error"
    status = await run_command(eng, "/resource-manager status")
    use = status["result"]["usage"]
    row = next(r for r in use["workflows"] if r["workflow"] == wf)
    assert row["tokens"] == 12_000 and row["budget_used"] == 1.2 and row["exceeded"] is True
    m = _scrape(eng)
    assert m["opsdeck_usage_tokens_total"][(("kind", "input"), ("name", wf), ("scope", "workflow"))] == 12_000
    assert m["opsdeck_usage_cost_usd_total"][(("name", wf), ("scope", "workflow"))] == 0.5
    assert m["opsdeck_usage_budget_used_ratio"][(("name", wf), ("scope", "workflow"))] == 1.2
    assert m["opsdeck_usage_budget"][(("name", wf), ("scope", "workflow"), ("unit", "tokens"))] == 10000


async def test_no_usage_no_usage_sections() -> None:
    eng = memory_sim(seed=0)
    await eng.advance(60)
    status = await run_command(eng, "/resource-manager status")
    assert "usage" not in status["result"]
    assert "opsdeck_usage_budget_used_ratio" not in _scrape(eng)


@pytest.mark.slow
async def test_the_panes_show_tokens_cost_and_the_budget_gauge(tmp_path: Path) -> None:
    app = make_app(tmp_path / "v.db")
    async with app.run_test(size=(160, 44)) as pilot:
        await settle(app, pilot, 600)
        head = str(app.query_one("#workflows-pane", Pane).query_one(".pane-header").render())
        assert "tokens" not in head, "no usage reported: no column"
        eng = app.host.engine
        wf = _spend_some(eng, 123_456, 1.25)
        await app.host.execute(f'/resource-manager allocate {wf} \'{{"budget": {{"cost_usd": 2.5}}}}\'')
        await settle(app, pilot)
        head = str(app.query_one("#workflows-pane", Pane).query_one(".pane-header").render())
        assert "tokens" in head and "cost" in head
        row = next(o.prompt.plain for o in app.workflows_pane.options if o.id == f"wf:{wf}")
        assert "123.5k" in row and "$1.2500" in row
        pools_head = str(app.query_one("#pools-pane", Pane).query_one(".pane-header").render())
        assert "tokens" in pools_head
        header = app.query_one("HeaderGauges").render().plain
        assert f"budget {wf}" in header and "50%" in header

"""An agent row without a task says why in the task column's width, keeping its key fact:
the time a quarantined agent is held to, the agent that replaced a failed one. The
column is ~18 wide at 120 columns and narrower at 80: 'no dispatch until ' alone said
neither, and 'replaced by agent_015' ran past its column into the figures."""

from __future__ import annotations

import pytest

from tui.widgets.agent_pools import idle_words


def test_a_held_agent_keeps_the_time_it_is_held_to_at_every_width() -> None:
    for w in (8, 12, 14, 18, 26, 40):
        words = idle_words(None, 4 * 3600 + 20 * 60 + 58.0, w)
        assert len(words) <= w, (w, words)
        assert "04:20:58" in words, (w, words)
    assert idle_words(None, 15658.0, 40) == "no dispatch until 04:20:58"


def test_a_replaced_agent_names_its_replacement_within_the_column() -> None:
    for w in (10, 12, 14, 18, 30):
        words = idle_words("agent_015", None, w)
        assert len(words) <= w and "agent_015" in words, (w, words)
    assert idle_words("agent_015", None, 30) == "replaced by agent_015"


def test_an_agent_with_nothing_to_say_is_a_dash() -> None:
    assert idle_words(None, None, 18) == "—"


@pytest.mark.slow
async def test_a_cut_off_agent_shows_no_cpu_or_memory_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """During a partition the cut-off agents' tasks keep running but nothing measures them:
    their row shows a dash in the cpu% and memMB columns, not 0; a reachable busy agent
    shows its measured figures."""
    from core.models import AgentStatus
    from tests.console_support import came_true, drill_until_plan, make_app, settle

    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await drill_until_plan(app, pilot, "network-partition")
        await settle(app, pilot)
        agents = app.link.state.agents.values()
        cut = next(a.id for a in agents if a.status is AgentStatus.UNREACHABLE)
        busy = next(a.id for a in agents if a.status is AgentStatus.BUSY)
        pane = app.pools_pane

        def row(agent: str) -> list[str]:
            lines = [pane.render_line(y).text for y in range(pane.size.height)]
            return next((ln.split() for ln in lines if f" {agent} " in ln), [])

        assert await came_true(pilot, lambda: bool(row(cut)) and bool(row(busy))), (cut, busy)
        assert row(cut)[-2:] == ["—", "—"], row(cut)
        assert row(busy)[-2].isdigit() and row(busy)[-1].isdigit(), row(busy)
        # Its detail screen says the same: no figure of now, and why.
        from rich.console import Console

        from tui.screens.agent import AgentScreen

        async def said(agent: str) -> str:
            screen = AgentScreen(agent)
            await app.push_screen(screen)
            con = Console(width=200, record=True, color_system=None)
            con.print(screen.body())
            await app.pop_screen()
            return con.export_text()

        cut_text, busy_text = await said(cut), await said(busy)
        assert "not measured while unreachable" in cut_text, cut_text
        cpu_line = next(ln for ln in cut_text.splitlines() if ln.startswith("CPU %"))
        assert cpu_line.rstrip().endswith("—"), cpu_line
        assert "not measured" not in busy_text

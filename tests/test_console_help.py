"""The help screen renders what it means: brackets in descriptions survive (no markup
eats them) and each gate's description is whole."""

from __future__ import annotations

from typing import get_args

from rich.console import Console

from core.incident_models import PlanStep
from core.incidents.kinds import GATES
from tests.console_support import came_true, make_app
from tui.screens.help import HelpScreen, _gate_doc, legend


def _plain(renderable) -> str:  # type: ignore[no-untyped-def]
    con = Console(width=400, record=True, color_system=None)
    con.print(renderable)
    return con.export_text()


def test_legend_keeps_brackets_and_whole_gate_docs():
    text = " ".join(_plain(legend()).split())
    for name in GATES:
        doc = _gate_doc(name)
        assert doc.endswith((".", ")", ":")) or len(doc.split()) > 3, (name, doc)
        assert " ".join(doc.split()) in text
        assert "``" not in doc, doc  # docstring markup is not the operator's


def test_legend_explains_the_marks_the_incidents_pane_draws():
    """Every [approval] the pane draws after a step's number is in the legend, a step
    state in words, and gates as they are shown ('gate NAME'), not as a bracket the pane
    never draws; a failed gate is said to abort the plan, not that the incident resolves."""
    text = " ".join(_plain(legend()).split())
    for approval in get_args(PlanStep.model_fields["approval"].annotation):
        assert f"[{approval}] Incidents pane:" in text, approval
    assert "plan step rolled back" in text and "rolled_back" not in text
    assert "'gate NAME'" in text and "[gate]" not in text
    assert "aborts the plan" in text and "resolves when every gate has" not in text


async def test_help_screen_shows_bracketed_config_names(tmp_path):
    app = make_app(tmp_path / "c.db")
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("question_mark")
        assert await came_true(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "[console.keys]" in str(app.screen.query_one("#help-note").render())
        table = " ".join(_plain(app.screen.keys_table).split())
        assert "@saved ([console.filters])" in table

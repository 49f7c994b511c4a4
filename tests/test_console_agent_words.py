"""An agent row without a task says why in the task column's width, keeping its key fact:
the time a quarantined agent is held to, the agent that replaced a failed one. The
column is ~18 wide at 120 columns and narrower at 80: 'no dispatch until ' alone said
neither, and 'replaced by agent_015' ran past its column into the figures."""

from __future__ import annotations

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

"""The event-line codec against every event line of the seed document."""

from __future__ import annotations

import re

import pytest

from core.events import EventLineError, format_line, looks_like_event_line, parse_line


def seed_event_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if looks_like_event_line(ln)]


def test_seed_has_all_fifteen_scenario_events(seed_text: str) -> None:
    types = {ln.split(":", 1)[0] for ln in seed_event_lines(seed_text)}
    assert len(seed_event_lines(seed_text)) == 15
    assert {
        "RESOURCE_EXHAUSTION",
        "AGENT_POOL_FAILURE",
        "DATA_RECOVERY_COMPLETED",
        "NETWORK_RECOVERY_COMPLETED",
    } <= types


def test_every_seed_line_round_trips(seed_text: str) -> None:
    for line in seed_event_lines(seed_text):
        ev = parse_line(line)
        again = format_line(ev.type, ev.component, ev.scope, ev.data)
        assert parse_line(again) == ev
        if "19/20" not in line:
            assert again == line  # byte for byte where the seed is valid JSON


def test_json_with_colons_splits_on_first_three_only() -> None:
    ev = parse_line('A_B:comp:scope:{"url":"http://x:1/y","t":"12:30"}')
    assert ev.component == "comp" and ev.scope == "scope"
    assert ev.data == {"url": "http://x:1/y", "t": "12:30"}


def test_bare_ratio_kept_as_text(seed_text: str) -> None:
    line = next(ln for ln in seed_event_lines(seed_text) if ln.startswith("RESOURCE_EXHAUSTION"))
    ev = parse_line(line)
    assert ev.data["system_utilization"] == {"cpu": 98.7, "memory": 96.2, "agents": "19/20"}


@pytest.mark.parametrize(
    ("line", "column", "needle"),
    [
        ("RESOURCE_EXHAUSTION:system:global", 34, "colon"),
        ("resource:system:global:{}", 1, "UPPER_SNAKE"),
        ("A::global:{}", 3, "component is empty"),
        ("A:sys tem:global:{}", 6, "invalid character"),
        ('A:system:global:{"a":1,}', 24, "invalid JSON"),
        ("A:system:global:[1,2]", 17, "JSON object"),
        ('A:system:global:{"a":19/}', 24, "invalid JSON"),
    ],
)
def test_malformed_lines_name_the_column(line: str, column: int, needle: str) -> None:
    with pytest.raises(EventLineError) as info:
        parse_line(line)
    assert info.value.column == column, str(info.value)
    assert needle in str(info.value)
    assert re.match(r"column \d+: ", str(info.value))

"""What the incident screen says of an incident that ended: the time from detection to its
end is that and no more (the outcome holds the recovery time and its basis), and a failed
incident is not said to have recovered."""

from __future__ import annotations

from rich.console import Console

from core.incident_models import Incident
from tui.screens.incident import incident_facts


def _plain(inc: Incident, now: float) -> str:
    console = Console(width=200, record=True)
    console.print(incident_facts(inc, now, lambda _n: "white"))
    return console.export_text()


def _ended(status: str) -> Incident:
    return Incident(
        id="INC-0001",
        scenario="resource-exhaustion",
        type="RESOURCE_EXHAUSTION",
        severity="critical",
        detected_at=100.0,
        status=status,  # type: ignore[arg-type]
        resolved_at=2306.0,
    )


def test_a_resolved_incident_says_the_time_from_detection_not_a_recovery_time() -> None:
    text = _plain(_ended("resolved"), 3000.0)
    assert "resolved at" in text and "36m46s after detection" in text
    assert "recovered" not in text


def test_a_failed_incident_is_not_said_to_have_recovered_or_resolved() -> None:
    text = _plain(_ended("failed"), 3000.0)
    assert "failed at" in text and "36m46s after detection" in text
    assert "recovered" not in text and "resolved at" not in text


def test_an_open_incident_says_how_long_it_has_been_open() -> None:
    inc = _ended("open").model_copy(update={"resolved_at": None})
    text = _plain(inc, 3000.0)
    assert "not yet — open for 48m20s" in text


def test_its_durations_are_the_differences_of_the_times_it_shows() -> None:
    """Fault at 59.9 (00:00:59), detected at 60.1 (00:01:00): detected 1s later, not 0s;
    resolved at 170.0 (00:02:50), 1m50s after detection (109.9 s, which alone reads 1m49s)."""
    inc = _ended("resolved").model_copy(update={"fault_at": 59.9, "detected_at": 60.1, "resolved_at": 170.0})
    text = _plain(inc, 200.0)
    assert "00:00:59  (detected 1s later)" in text and "00:01:00" in text, text
    assert "00:02:50  (1m50s after detection)" in text, text


def test_a_list_of_times_or_durations_is_shown_as_times_or_durations() -> None:
    from tui.response_view import field_cell

    assert field_cell("applied_at", [2001.4222945499205, 2845.0, 3810]) == "00:33:21, 00:47:25, 01:03:30"
    assert field_cell("took_s", [75.0, 30.0]) == "1m15s, 30"
    assert field_cell("seqs", [1, 2, 3]) == "1, 2, 3"
    assert field_cell("applied_at", []) == field_cell("other", [])


def test_what_must_pass_is_said_in_whole_sentences() -> None:
    inc = _ended("resolved").model_copy(update={"criteria": ["network_recovered"]})
    text = " ".join(_plain(inc, 3000.0).split())
    assert "no task it held when the incident opened is left on an unreachable agent" in text, text
    # Passed after a heal with nothing moved (7feace8): the criterion does not say the work was moved.
    assert "was moved to reachable agents" not in text, text
    assert "is its credit, not this." in text, text
    assert "no task completed twice." in text, text

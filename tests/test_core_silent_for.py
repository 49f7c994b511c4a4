"""How long an agent has been silent (``Telemetry.silent_for``), one meaning for the
standing reassignment, the redundancy command and the health analyses: since this
process last heard it, else since its last heartbeat on record, else not silent."""

from __future__ import annotations

from core.models import Agent, AgentStatus
from core.telemetry import Telemetry


def _agent(heartbeat: float | None) -> Agent:
    return Agent(id="a1", pool="p", specializations=[], status=AgentStatus.UNREACHABLE, last_heartbeat=heartbeat)


def test_silence_counts_from_the_last_report_heard_here() -> None:
    tel = Telemetry()
    tel.liveness["a1"] = 70.0
    assert tel.silent_for(_agent(10.0), 100.0) == 30.0, "the report heard here, not the older heartbeat"


def test_a_log_reopened_counts_from_the_heartbeat_on_record() -> None:
    tel = Telemetry()
    assert tel.silent_for(_agent(40.0), 100.0) == 60.0
    assert tel.silent_for(_agent(0.0), 100.0) == 100.0, "a heartbeat at time 0 is a heartbeat"


def test_an_agent_never_heard_is_not_silent_yet() -> None:
    tel = Telemetry()
    assert tel.silent_for(_agent(None), 100.0) == 0.0
    tel.liveness["other"] = 1.0
    assert tel.silent_for(_agent(None), 100.0) == 0.0, "another agent's report is not this one's"

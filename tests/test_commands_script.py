"""The script format: parsing errors name their line; expectations, faults and the
clock behave as documented (in-process, on a fresh demo fleet)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.commands.script import ScriptError, ScriptRunner, parse_script
from core.session import open_sim


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("advance 5x\n", 1, "duration"),
        ("# c\n\nexpect task_done\n", 3, "UPPER_SNAKE_CASE"),
        ("expect TASK_COMPLETED agent\n", 1, "field=value"),
        ("expect TASK_COMPLETED within soon\n", 1, "duration"),
        ("fault explode agent_001\n", 1, "fault"),
        ("fault slow agent_001\n", 1, "takes 2..2"),
        ('advance 1m\n/debug \'{\n  "scope": "x"\n', 2, "unterminated"),
        ("TASK_DONE:agent:x:{bad}\n", 1, "column"),
        ("launch rockets\n", 1, "unknown step"),
    ],
)
def test_malformed_scripts_name_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(ScriptError) as e:
        parse_script(text)
    assert e.value.line == line and what in e.value.message


def test_multiline_commands_and_event_lines_parse() -> None:
    steps = parse_script("""# x
/resource-manager emergency-analysis '{
  "trigger": "t"
}'
RESOURCE_EXHAUSTION:system:global:{"agents":19/20}
wait 30s
expect no WORKFLOW_FAILED within 1m
expect-error WORKFLOW_NOT_FOUND
""")
    assert [s.kind for s in steps] == ["command", "event", "advance", "expect", "expect-error"]
    assert steps[0].line == 2 and steps[0].text.endswith("}'")
    assert steps[1].args["header"].data["agents"] == "19/20"
    assert steps[3].args["negate"] and steps[3].args["within"] == 60.0


async def _run(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    engine = await open_sim(tmp_path / "s.db", demo=True)
    lines: list[str] = []
    try:
        res = await ScriptRunner(engine, lines.append).run(parse_script(text))
    finally:
        await engine.close()
    return res, lines


async def test_expectations_faults_and_fields(tmp_path: Path) -> None:
    res, lines = await _run(
        tmp_path,
        """advance 5m
fault fail agent_005 disk full
expect AGENT_ERROR agent=agent_005 error="disk full"
RESOURCE_EXHAUSTION:system:global:{"affected_workflows":["workflow_001","workflow_002"],"system_utilization":{"cpu":98.7}}
expect RESOURCE_EXHAUSTION system_utilization.cpu=98.7 affected_workflows=workflow_002
expect no WORKFLOW_FAILED within 2m
expect TASK_ASSIGNED within 10m
""",
    )
    assert res.ok, res.message
    assert any(ln.startswith("AGENT_ERROR:agent:health:") for ln in lines)
    assert sum("expectation met" in ln for ln in lines) == 4


async def test_each_expectation_consumes_its_event(tmp_path: Path) -> None:
    res, _ = await _run(
        tmp_path,
        """PERFORMANCE_DEGRADATION_DETECTED:performance:trend_analysis:{"confidence":0.94}
expect PERFORMANCE_DEGRADATION_DETECTED
expect PERFORMANCE_DEGRADATION_DETECTED
""",
    )
    assert not res.ok and res.failed_line == 3 and "since the last expectation" in res.message


async def test_failed_command_stops_unless_an_error_is_expected(tmp_path: Path) -> None:
    res, _ = await _run(
        tmp_path, "/coordination-hub resume workflow_003\nexpect-error INVALID_STATE\n/coordination-hub pause nope\n"
    )
    assert not res.ok and res.failed_line == 3 and "WORKFLOW_NOT_FOUND" in res.message
    res, _ = await _run(tmp_path, "/workflow-status\nexpect-error\n")
    assert not res.ok and res.failed_line == 2 and "succeeded" in res.message

"""Fuzzed inputs get their own error, never an uncaught exception.

Event lines, scripts, workflow files and config files built by hypothesis from the
real grammar's pieces (right keys with wrong types, non-ASCII names, inf, huge
numbers) and from raw text: each parser raises only its documented error type.
``OPSDECK_FUZZ_EXAMPLES`` raises the number of examples (default 150).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.commands.script import ScriptError, parse_script
from core.config import ConfigError, load_config
from core.engine import EngineError
from core.events import EventLineError, parse_line
from core.session import memory_sim
from core.workflow_file import WorkflowFileError, parse_workflow_text

EXAMPLES = int(os.environ.get("OPSDECK_FUZZ_EXAMPLES", "150"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ENGINE = memory_sim(seed=1)

names = st.sampled_from(["x", "é", "a b", "", "workers", "w/t", "ü:1", "TASK_COMPLETED", "agent_001", "workflow_001"])


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


leaf = st.one_of(st.booleans(), st.integers(-(2**40), 2**40), st.floats(), names, st.text(max_size=6))
tvalue = st.recursive(
    leaf, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=2)), max_leaves=5
)
POOL_KEYS = ["name", "specializations", "size", "min_size", "max_size", "bogus"]
WF_KEYS = ["id", "priority", "allocation", "depends_on", "name", "guarantee", "limits", "bogus"]
TASK_KEYS = [
    "id",
    "command",
    "cwd",
    "env",
    "specialization",
    "timeout_s",
    "retries",
    "memory_gb",
    "cpu",
    "depends_on",
    "shell",
    "duration_s",
]
RUNTIME_KEYS = ["heartbeat_s", "sample_s", "stop_grace_s", "bogus"]


def table(keys: list[str]) -> Any:
    return st.dictionaries(st.sampled_from(keys), tvalue, max_size=len(keys))


@st.composite
def workflow_files(draw: Any) -> str:
    out = []
    if draw(st.booleans()):
        out.append("[runtime]")
        out += [f"{k} = {toml_value(v)}" for k, v in draw(table(RUNTIME_KEYS)).items()]
    for _ in range(draw(st.integers(0, 2))):
        out.append("[[pools]]")
        out += [f"{k} = {toml_value(v)}" for k, v in draw(table(POOL_KEYS)).items()]
    for _ in range(draw(st.integers(0, 2))):
        out.append("[[workflows]]")
        out += [f"{k} = {toml_value(v)}" for k, v in draw(table(WF_KEYS)).items()]
        for _ in range(draw(st.integers(0, 2))):
            out.append("  [[workflows.phases]]")
            out.append(f"  name = {toml_value(draw(names))}")
            for _ in range(draw(st.integers(0, 2))):
                out.append("    [[workflows.phases.tasks]]")
                out += [f"    {k} = {toml_value(v)}" for k, v in draw(table(TASK_KEYS)).items()]
    return "\n".join(out) + "\n"


@pytest.mark.slow
@PROPS
@given(text=st.one_of(workflow_files(), st.text(max_size=200)))
def test_workflow_files(text: str) -> None:
    try:
        parse_workflow_text(text, "fuzz.toml")
    except WorkflowFileError as exc:
        assert exc.problems


SECTIONS = {
    "capacity": ["cpu_cores", "memory_gb", "agents"],
    "intervals": ["heartbeat_s", "sample_s", "checkpoint_s"],
    "thresholds": ["cpu_warning", "exhaustion"],
    "retries": ["attempts"],
    "console": ["theme", "keys"],
    "bogus": ["x"],
}


@pytest.mark.slow
@PROPS
@given(data=st.data())
def test_config_files(tmp_path: Path, data: Any) -> None:
    lines = []
    for section in data.draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=3, unique=True)):
        lines.append(f"[{section}]")
        for k, v in data.draw(st.dictionaries(st.sampled_from(SECTIONS[section]), tvalue, max_size=3)).items():
            lines.append(f"{k} = {toml_value(v)}")
    p = tmp_path / "c.toml"
    raw = data.draw(st.one_of(st.just("\n".join(lines).encode()), st.binary(max_size=40)))
    p.write_bytes(raw)
    try:
        cfg = load_config(p)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert all(
            math.isfinite(v) for v in (cfg.capacity.cpu_cores, cfg.intervals.sample_s, cfg.intervals.heartbeat_s)
        )


TYPES = st.sampled_from(
    [
        "TASK_COMPLETED",
        "SETTING_CHANGED",
        "AGENT_ERROR",
        "RESOURCE_ALLOCATED",
        "PLAN_APPROVED",
        "POOL_CREATED",
        "WORKFLOW_CREATED",
        "STATE_RESTORED",
        "CUSTOM_THING",
        "bad",
        "É",
    ]
)


@PROPS
@given(
    line=st.one_of(
        st.builds(
            lambda t, c, s, d: f"{t}:{c}:{s}:{json.dumps(d)}",
            TYPES,
            names,
            names,
            st.dictionaries(
                st.sampled_from(
                    ["task", "agent", "workflow_id", "key", "value", "pool", "plan_id", "spec", "allocation"]
                ),
                tvalue,
                max_size=3,
            ),
        ),
        st.text(max_size=80),
    )
)
def test_event_lines(line: str) -> None:
    try:
        header = parse_line(line)
    except EventLineError:
        return
    before = ENGINE.state.state_hash(), ENGINE.state.seq
    try:
        ENGINE.inject(header, actor="fuzz")
    except EngineError:
        assert (ENGINE.state.state_hash(), ENGINE.state.seq) == before


@PROPS
@given(
    text=st.one_of(
        st.lists(
            st.sampled_from(
                [
                    "advance 1m",
                    "advance 1e9h",
                    "wait x",
                    "expect TASK_COMPLETED within 1m",
                    "expect no X",
                    "expect-error",
                    "fault fail agent_001",
                    "fault slow",
                    "fault spike 1 1 1h",
                    "/workflow-status",
                    "/x '{",
                    "TASK_COMPLETED:agent:execution:{}",
                    "# c",
                    "",
                    "é",
                ]
            ),
            max_size=6,
        ).map("\n".join),
        st.text(max_size=120),
    )
)
def test_scripts(text: str) -> None:
    try:
        parse_script(text)
    except ScriptError as exc:
        assert exc.line >= 1

"""The grammar and validation: clean errors naming the place, and nothing changed.

Property tests feed malformed commands and JSON (random text, truncated and mutated
seed commands, payloads of the wrong shape) to ``run_command``: it never raises,
and whenever it answers with an error the state hash is what it was before.
"""

from __future__ import annotations

import functools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.commands import REGISTRY, run_command
from core.commands.grammar import CommandSyntaxError, line_col, parse, tokenize
from core.session import memory_sim

from .commands_seed import seed_items


@functools.cache
def seed_commands() -> list[str]:
    """The seed document's commands (the test skips when the document is not found)."""
    return [i.text for i in seed_items() if i.kind == "command"]


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    eng = memory_sim(seed=0)
    return eng


def test_tokenize_keeps_positions_across_quotes_and_lines() -> None:
    text = '/a b \'x\n y\' "q\\"z" c\\ d'
    toks = tokenize(text)
    assert [t.value for t in toks] == ["/a", "b", "x\n y", 'q"z', "c d"]
    x = toks[2]
    assert text[x.offset_of(1)] == "\n" and text[x.offset_of(2)] == " " and x.offset_of(0) == text.index("x")


def test_unterminated_quote_names_its_column() -> None:
    with pytest.raises(CommandSyntaxError) as e:
        parse('/debug \'{"scope": 1}')
    assert e.value.line == 1 and e.value.column == 8


async def test_json_error_points_into_the_multiline_argument(engine) -> None:  # type: ignore[no-untyped-def]
    text = '/resource-manager emergency-analysis \'{\n  "trigger": "x",\n  "analysis_depth" "deep"\n}\''
    resp = await run_command(engine, text)
    assert resp["status"] == "error" and resp["error"]["code"] == "INVALID_JSON"
    d = resp["error"]["details"]
    assert (d["line"], d["column"]) == (3, 20)
    assert line_col(text, text.index('"deep"')) == (3, 20)


async def test_validation_error_names_field_expected_and_column(engine) -> None:  # type: ignore[no-untyped-def]
    text = """/resource-manager emergency-reallocation '{"actions": [{"action": "pause_low_priority_workflows", "affected": "workflow_003"}]}'"""
    resp = await run_command(engine, text)
    err = resp["error"]
    assert err["code"] == "INVALID_PAYLOAD"
    assert err["details"]["field"] == "actions[0].affected"
    assert "list" in err["details"]["expected"]
    assert text[err["details"]["column"] - 1 :].startswith('"workflow_003"')


async def test_unknown_field_gets_did_you_mean(engine) -> None:  # type: ignore[no-untyped-def]
    text = """/performance-monitor post-emergency-monitoring '{"monitoring_duraton": "2h"}'"""
    resp = await run_command(engine, text)
    err = resp["error"]
    assert err["code"] == "INVALID_PAYLOAD"
    assert "monitoring_duration" in err["message"]
    assert text[err["details"]["column"] - 1 :].startswith('"monitoring_duraton"')


@pytest.mark.parametrize(
    ("text", "code", "hint"),
    [
        ("/resource-manger status", "UNKNOWN_COMPONENT", "/resource-manager"),
        ("/resource-manager emergency-realocation '{}'", "UNKNOWN_OPERATION", "emergency-reallocation"),
        ("/coordination-hub", "MISSING_OPERATION", "checkpoint"),
        ("resource-manager status", "INVALID_SYNTAX", "/<component>"),
        (
            '/subagents \'{"phase": "x"}\' \'[{"command": "/debug", "scope": "s"}]\' --emergancy',
            "UNKNOWN_FLAG",
            "--emergency",
        ),
        ("/coordination-hub pause", "WORKFLOW_REQUIRED", "workflow-id"),
        ("/coordination-hub pause workflow_003 workflow_002", "UNEXPECTED_ARGUMENT", "workflow_002"),
        ("/coordination-hub checkpoint '[1, 2]'", "INVALID_PAYLOAD", "object"),
        ("", "EMPTY_COMMAND", "component"),
    ],
)
async def test_bad_commands_get_clear_errors(engine, text: str, code: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    h = engine.state.state_hash()
    resp = await run_command(engine, text)
    assert resp["status"] == "error", resp
    assert resp["error"]["code"] == code, resp
    blob = json.dumps(resp)
    assert hint in blob
    assert "line" in resp["error"]["details"] or code == "WORKFLOW_REQUIRED"
    assert engine.state.state_hash() == h


async def test_execution_error_changes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    h = engine.state.state_hash()
    resp = await run_command(engine, "/coordination-hub resume no_such_workflow")
    assert resp["error"]["code"] == "WORKFLOW_NOT_FOUND"
    assert resp["recovery_suggestions"]
    resp = await run_command(
        engine,
        """/resource-manager emergency-reallocation '{"actions": [
        {"action": "reduce_resource_allocation", "affected": ["workflow_002"], "reduction": {"agents": 1}},
        {"action": "pause_low_priority_workflows", "affected": ["nope"]}]}'""",
    )
    assert resp["error"]["code"] == "WORKFLOW_NOT_FOUND"
    assert engine.state.state_hash() == h, "checks run before any change"


async def test_workflow_id_may_lead_and_registry_completes(engine) -> None:  # type: ignore[no-untyped-def]
    resp = await run_command(engine, "/coordination-hub get-status workflow_001")
    assert resp["status"] == "success" and resp["workflow_id"] == "workflow_001"
    resp = await run_command(engine, "/coordination-hub workflow_001 get-status")
    assert resp["status"] == "success" and resp["workflow_id"] == "workflow_001"
    resp = await run_command(engine, "/workflow-status workflow_002")
    assert resp["result"]["workflow_id"] == "workflow_002"
    assert "/resource-manager emergency-reallocation" in REGISTRY.complete("/resource-manager emer")
    assert REGISTRY.complete("/coord") == ["/coordination-hub"]


# -- properties -------------------------------------------------------------------


async def _assert_clean(engine, text: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    h = engine.state.state_hash()
    resp = await run_command(engine, text)
    assert isinstance(resp, dict) and resp["status"] in ("success", "error")
    if resp["status"] == "error":
        err = resp["error"]
        assert err["code"] and err["message"] and isinstance(err["details"], dict)
        assert err["code"] != "INTERNAL_ERROR", resp
        assert engine.state.state_hash() == h, f"an error changed state: {text!r}"
    return resp


PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPS
@given(text=st.text(max_size=120))
async def test_random_text_never_raises_and_changes_nothing(engine, text: str) -> None:  # type: ignore[no-untyped-def]
    resp = await _assert_clean(engine, text)
    if not text.strip().startswith("/"):
        assert resp["status"] == "error"


@PROPS
@given(data=st.data())
async def test_mutated_seed_commands_fail_cleanly(engine, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    text = data.draw(st.sampled_from(seed_commands()))
    how = data.draw(st.sampled_from(["truncate", "delete", "insert", "swap"]))
    i = data.draw(st.integers(0, len(text) - 1))
    if how == "truncate":
        text = text[:i]
    elif how == "delete":
        text = text[:i] + text[i + 1 :]
    elif how == "insert":
        text = text[:i] + data.draw(st.sampled_from(list("{}[]\"',:x-0 \n\\"))) + text[i:]
    else:
        text = text[:i] + text[i + 1 : i + 2] + text[i : i + 1] + text[i + 2 :]
    # Mutations that stay valid may run; analyses then change only the counter.
    await _assert_clean(engine, text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)


@pytest.mark.slow
@PROPS
@given(data=st.data())
async def test_wrong_payloads_for_every_operation_fail_cleanly(engine, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    spec = data.draw(st.sampled_from(list(REGISTRY)))
    fields = list(spec.payload.model_fields) or ["x"]
    payload = data.draw(st.dictionaries(st.sampled_from(fields + ["bogus"]), JSON_VALUES, min_size=1, max_size=3))
    arg = json.dumps(payload).replace("'", "\\u0027")
    if spec.json_args:
        text = f"/{spec.component} '{arg}' '{arg}'"
    else:
        text = f"/{spec.component} {spec.operation} '{arg}'"
    await _assert_clean(engine, text)

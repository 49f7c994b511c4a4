"""A rejected event changes nothing and never breaks the chain.

Every event type a reducer folds is injected with empty data and with data naming
things that do not exist: each is refused with a message naming the field, the
state hash, sequence number and unflushed buffer stay as they were, and the log
written afterwards verifies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.commands import run_command
from core.engine import EngineError
from core.event_types import EVENTS
from core.events import EventHeader
from core.session import memory_sim, open_sim
from core.store import Store
from core.verify import verify_store

from .conftest import opsdeck_cmd

BAD_REFS = {
    "agent": "agent_999",
    "task": "nope/none",
    "workflow_id": "wf_none",
    "pool": "no_pool",
    "plan_id": "PLAN-9999",
    "incident_id": "INC-9999",
    "id": "RES-9999",
}


SCHEMAS = {str(t): t.payload for t in EVENTS if t.payload is not None}
NOT_INJECTABLE = {str(t) for t in EVENTS if not t.injectable}


def test_every_folded_type_has_a_schema() -> None:
    folded = {str(t) for t in EVENTS if t.fold is not None}
    assert folded <= set(SCHEMAS) | NOT_INJECTABLE


@pytest.mark.parametrize("type_", sorted(set(SCHEMAS) | NOT_INJECTABLE))
def test_bad_data_is_refused_and_changes_nothing(type_: str) -> None:
    eng = memory_sim()
    before = (eng.state.state_hash(), eng.state.seq, list(eng.log.buffer))
    tries: list[dict[str, object]] = [{}]
    refs = SCHEMAS[type_].refs if type_ in SCHEMAS else {}
    if refs:
        tries.append(
            {f: BAD_REFS[f] for f in refs}
            | {"step": 0, "held": True, "allocation": {}, "context": {}, "agent": "agent_999"}
        )
    for data in tries:
        if data == {} and type_ in SCHEMAS and not any(f.is_required() for f in SCHEMAS[type_].model_fields.values()):
            continue  # nothing required: {} is valid data for it
        with pytest.raises(EngineError) as exc:
            eng.inject(EventHeader(type=type_, component="test", scope="test", data=data))
        assert exc.value.code == "INVALID_EVENT"
        assert type_ in exc.value.message
        assert (eng.state.state_hash(), eng.state.seq, list(eng.log.buffer)) == before
    ev = eng.emit("SETTING_CHANGED", "system", "settings", {"key": "after", "value": 1})
    assert ev.seq == before[1] + 1


async def test_a_rejected_publish_leaves_no_gap(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    eng = await open_sim(db, demo=True)
    try:
        h, seq = eng.state.state_hash(), eng.state.seq
        resp = await run_command(
            eng,
            """/coordination-hub publish-event '{"type":"SETTING_CHANGED","component":"system","scope":"settings","data":{}}'""",
        )
        assert resp["status"] == "error" and resp["error"]["code"] == "INVALID_EVENT"
        assert "data.key" in resp["error"]["message"]
        # The failed command is recorded (COMMAND_EXECUTED) but the rejected event is not.
        assert eng.state.seq in (seq, seq + 1)
        ok = await run_command(eng, "/workflow-status")
        assert ok["status"] == "success"
        await eng.flush()
    finally:
        await eng.close()
    store = await Store.open(db)
    try:
        rep = await verify_store(store)
        assert rep.ok, rep.as_dict()
    finally:
        await store.close()
    del h


@pytest.mark.slow
def test_script_event_line_with_empty_data_is_an_error_not_a_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    f = tmp_path / "s.ops"
    f.write_text("TASK_COMPLETED:agent:execution:{}\nRESOURCE_THRESHOLD:résource:x:{}\n", encoding="utf-8")
    r = subprocess.run(
        opsdeck_cmd("script", str(f), "--create", "--db", str(tmp_path / "s.db")),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert "Traceback" not in r.stderr
    assert r.returncode == 2 and "column 21" in r.stderr  # the malformed second line is found before anything runs
    f.write_text("TASK_COMPLETED:agent:execution:{}\n", encoding="utf-8")
    r = subprocess.run(
        opsdeck_cmd("script", str(f), "--create", "--db", str(tmp_path / "s.db")),
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
    )
    assert r.returncode == 1 and "data.task" in r.stderr and "Traceback" not in r.stderr
    v = subprocess.run(
        opsdeck_cmd("verify", "--db", str(tmp_path / "s.db")), capture_output=True, text=True, env=cli_env, timeout=120
    )
    assert v.returncode == 0, v.stdout + v.stderr

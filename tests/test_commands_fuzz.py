"""Fuzzed commands: run_command never raises, and an error response changes nothing.

Hypothesis builds commands from the registry (every component and operation, with
workflow ids that exist or not, and JSON payloads of the operation's own field names
with values of every JSON type) plus raw text. Each runs on one demo fleet that
evolves as the successful ones change it; after each error the state hash, the
sequence number and the uncommitted log are as they were before the command.
``OPSDECK_FUZZ_EXAMPLES`` raises the number of examples (default 150).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.commands import run_command
from core.engine import Engine
from core.events import UnchainedRow
from core.host.language import LANGUAGE as REGISTRY
from core.session import memory_sim, open_sim

EXAMPLES = int(os.environ.get("OPSDECK_FUZZ_EXAMPLES", "150"))
LOOP = asyncio.new_event_loop()
ENGINE = memory_sim(seed=3)
LOOP.run_until_complete(ENGINE.advance(600))
SPECS = sorted(REGISTRY, key=lambda s: s.name)
IDS = sorted(ENGINE.state.workflows) + ["nope", "workflow_999", "", "../x", "\xff", "é"]
AGENTS = sorted(ENGINE.state.agents)[:3] + ["agent_999"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(IDS + AGENTS),
    st.sampled_from([0, 1, -1, 100, 1e308]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def commands(draw: Any) -> str:
    spec = draw(st.sampled_from(SPECS))
    parts = [f"/{spec.component}", spec.operation]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(IDS)))
    names = [f["name"] for f in spec.fields()] + ["bogus"]
    if draw(st.booleans()):
        payload = {draw(st.sampled_from(names)): draw(values) for _ in range(draw(st.integers(0, 3)))}
        parts.append("'" + json.dumps(payload).replace("'", "\\u0027") + "'")
    if spec.flags and draw(st.booleans()):
        parts.append("--" + draw(st.sampled_from(sorted(spec.flags))))
    return " ".join(parts)


def _fingerprint() -> tuple[str, int, list[UnchainedRow]]:
    """The state hash, the last seq and the rows held for the next commit (the engine has
    no store: it chains nothing)."""
    e = ENGINE
    return e.state.state_hash(), e.state.seq, list(e.log.buffer)


PROPS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.slow
@PROPS
@given(text=st.one_of(commands(), st.text(max_size=80).map(lambda t: "/" + t)))
def test_an_error_changes_nothing(text: str) -> None:
    before = _fingerprint()
    resp = LOOP.run_until_complete(run_command(ENGINE, text, actor="fuzz"))  # never raises
    assert resp["status"] in ("success", "error")
    if resp["status"] == "error":
        assert resp["error"]["code"] != "INTERNAL_ERROR", (text, resp["error"])
        assert _fingerprint() == before, (text, resp["error"])
    else:
        LOOP.run_until_complete(ENGINE.advance(5))  # the fleet moves on between commands


@pytest.fixture(scope="module")
def stored() -> Iterator[Engine]:
    """A demo database for the store test, opened when that test runs and closed after
    it: its SQLite thread must not outlive the module (nor be started by collection,
    which runs no fixture to close it), or the test process could not exit."""
    where = tempfile.mkdtemp(prefix="opsdeck-fuzz-")
    eng = LOOP.run_until_complete(open_sim(Path(where) / "f.db", seed=5, demo=True))
    try:
        LOOP.run_until_complete(eng.advance(600))
        LOOP.run_until_complete(eng.flush())
        yield eng
    finally:
        LOOP.run_until_complete(eng.close())
        shutil.rmtree(where, ignore_errors=True)


def _stored_fingerprint(eng: Engine) -> tuple[str, int, int]:
    assert eng.store is not None
    committed = LOOP.run_until_complete(eng.store.count_events())
    return eng.state.state_hash(), eng.state.seq, committed


@settings(
    max_examples=max(EXAMPLES // 3, 20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=commands())
def test_an_error_changes_nothing_in_the_store(stored: Engine, text: str) -> None:
    """With a database: the log holds no trace of a failed command (commands that
    checkpoint or read the log flush midway; they must refuse before that)."""
    LOOP.run_until_complete(stored.flush())
    before = _stored_fingerprint(stored)
    resp = LOOP.run_until_complete(run_command(stored, text, actor="fuzz"))
    LOOP.run_until_complete(stored.flush())
    if resp["status"] == "error":
        assert resp["error"]["code"] != "INTERNAL_ERROR", (text, resp["error"])
        assert _stored_fingerprint(stored) == before, (text, resp["error"])
    else:
        LOOP.run_until_complete(stored.advance(5))

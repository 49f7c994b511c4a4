"""With transaction logging on, a command's answer follows its commit: a refused commit
is answered ``STORAGE_*`` and takes the command back, for every caller (a script, a
drill's stdin, a plan's step), not only a host answering a client."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.commands import run_command
from core.config import Config
from core.session import open_sim

from .store_support import refuse_commits, stored_head

PROTECT = (
    '/coordination-hub emergency-data-protection \'{"affected_workflow": "workflow_002", '
    '"immediate_actions": ["enable_transaction_logging"]}\''
)


async def test_a_refused_commit_takes_the_command_back_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "t.db"
    eng = await open_sim(db, Config(), seed=0, demo=True)
    full = [False]
    try:
        await eng.advance(120)
        assert (await run_command(eng, PROTECT))["status"] == "success"
        await eng.flush()
        full = refuse_commits(eng, monkeypatch)
        seq, agents = eng.state.seq, eng.state.workflows["workflow_003"].allocation.agents
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 4}'")
        assert res["status"] == "error" and res["error"]["code"] == "STORAGE_FULL", res
        assert res["error"]["details"]["taken_back"] is True
        assert eng.state.seq == seq and eng.unflushed == 0, "nothing of it is held"
        assert stored_head(db) == seq, "nor stored"
        assert eng.state.workflows["workflow_003"].allocation.agents == agents != 4
        full[0] = False
        res = await run_command(eng, "/resource-manager allocate workflow_003 '{\"agents\": 4}'")
        assert res["status"] == "success", res
        assert eng.state.workflows["workflow_003"].allocation.agents == 4
        assert stored_head(db) == eng.state.seq > seq, "what the reply acknowledges is in the database"
    finally:
        full[0] = False
        await eng.close()

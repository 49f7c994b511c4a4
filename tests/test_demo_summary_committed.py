"""``opsdeck demo --headless --json``'s last line gives the log's head: the seq of the
last event it printed and stored, even when the storage refused the last commits (the
events emitted then are held, never printed, and not counted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import Config
from core.store import Store
from core.store_errors import StorageError
from opsdeck.subcommands.demo import _headless

from .store_support import as_commit, stored_head


@pytest.mark.parametrize("refuse_after", [None, 3])
async def test_the_summary_counts_only_committed_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], refuse_after: int | None
) -> None:
    """None: every commit goes through (the summary is the last event's seq); 3: the disk
    is full from the fourth commit on, the demo ends with the storage's error, and the
    summary still says only what the log holds."""
    real = Store.append
    calls = [0]

    async def append(self: Store, *a: Any, **k: Any) -> None:
        calls[0] += 1
        if refuse_after is not None and calls[0] > refuse_after:
            raise StorageError("full", str(db), f"{db}: the disk is full")
        await real(self, *a, **k)

    monkeypatch.setattr(Store, "append", as_commit(append))
    db = tmp_path / "d.db"
    if refuse_after is None:
        assert await _headless(db, Config(), 0, 600.0, as_json=True) == 0
    else:
        with pytest.raises(StorageError):
            await _headless(db, Config(), 0, 600.0, as_json=True)
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    summary, events = records[-1], records[:-1]
    assert summary["summary"] == "demo" and events
    assert summary["seq"] == events[-1]["seq"] == stored_head(db)

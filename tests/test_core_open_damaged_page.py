"""Opening a log whose older checkpoints are hashed a page at a time: a page that cannot
be read is tried once, its checkpoints are read one at a time so the damaged one is named,
and the open is refused with a clear error (no retry of the page per checkpoint)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.engine import Engine
from core.session import open_sim
from core.store import StoreError
from core.store_tables import CheckpointTable

N = 80
DAMAGED = 60


def _undecodable(db: Path, checkpoint_id: int) -> None:
    """One byte of a stored state made a byte that is not UTF-8 (a flipped high bit):
    the checkpoint's row lists, but its state text cannot be read."""
    con = sqlite3.connect(db)
    try:
        text = con.execute("SELECT state FROM checkpoints WHERE id=?", (checkpoint_id,)).fetchone()[0]
        raw = bytearray(text.encode())
        raw[len(raw) // 2] = 0xFF
        con.execute("UPDATE checkpoints SET state = CAST(? AS TEXT) WHERE id=?", (bytes(raw), checkpoint_id))
        con.commit()
    finally:
        con.close()


async def test_a_damaged_page_of_older_checkpoints_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "cps.db"
    eng = await open_sim(db, demo=True, seed=5)
    eng.auto_checkpoints = False
    await eng.advance(30)
    for _ in range(N):
        await eng.checkpoint("manual", "")
    await eng.close()
    _undecodable(db, DAMAGED)

    pages: list[tuple[int, int]] = []
    read = CheckpointTable.text_hashes

    async def counted(self: CheckpointTable, below: int, above: int, limit: int) -> Any:
        if limit > 1:
            pages.append((below, above))
        return await read(self, below, above, limit)

    monkeypatch.setattr(CheckpointTable, "text_hashes", counted)
    with pytest.raises(StoreError) as err:
        await Engine.open(db)  # a writer checks every older checkpoint
    msg = str(err.value)
    assert f"checkpoint {DAMAGED} is unreadable" in msg
    assert "Traceback" not in msg and "opsdeck verify" in msg
    # The newest (N) is loaded; N-1..1 are hashed in pages of 64: the page holding the
    # damaged one fails once, its checkpoints are read on their own, the rest is one page.
    assert pages == [(N, 0), (N - 64, 0)], pages

"""``/host status`` and ``/v1/health`` name the checkpoint rows no event records, from
the finding of the open (kept, not looked for again per call), until a cleanup removes
them or a host's verify finds none; a database whose rows are all recorded shows none."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Config
from core.host.client import HostClient
from core.host.host import Host
from core.store import Store

from .store_support import checkpoint_rows
from .test_open_unrecorded_notice import WORDS, _with_orphan


async def _status(host: Host) -> tuple[dict[str, object], str]:
    res = await host.execute("/host status", "operator")
    assert res["status"] == "success", res
    return res["result"]["storage"], res["result"]["summary"]


async def test_host_status_and_health_name_the_unrecorded_rows_until_cleanup_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    orphan = await _with_orphan(db)
    host = await Host.open_sim(db, Config(), speed=0)
    try:
        await host.serve()
        looked: list[int] = []
        real = Store.list_checkpoints

        async def counted(self: Store, after: int = 0) -> list[dict[str, object]]:
            looked.append(after)
            return await real(self, after)

        monkeypatch.setattr(Store, "list_checkpoints", counted)
        storage, message = await _status(host)
        assert storage["checkpoints_unrecorded"] == 1 and storage["checkpoints"] == WORDS.format(id=orphan), storage
        assert message.endswith(f"; {WORDS.format(id=orphan)}"), message
        async with HostClient(socket_path=host.socket_path) as client:
            health = await client.health()
            assert health["storage"]["checkpoints_unrecorded"] == 1, health
            await _status(host)
            assert looked == [], "the open's finding is shown: the rows are not read again per call"

            res = await host.execute("/workflow-recovery cleanup-checkpoints", "operator")
            assert res["status"] == "success" and res["result"]["unrecorded"] == [orphan], res
            assert orphan not in await checkpoint_rows(db)
            storage, message = await _status(host)
            assert storage["checkpoints_unrecorded"] == 0 and storage["checkpoints"] is None, storage
            assert "CHECKPOINT_CREATED" not in message, message
            assert (await client.health())["storage"]["checkpoints_unrecorded"] == 0
    finally:
        await host.close()


async def test_every_row_recorded_shows_none(tmp_path: Path) -> None:
    """The must-not: nothing unrecorded, nothing named."""
    db = tmp_path / "r.db"
    await _with_orphan(db, orphan=False)
    host = await Host.open_sim(db, Config(), speed=0)
    try:
        storage, message = await _status(host)
        assert storage["checkpoints_unrecorded"] == 0 and storage["checkpoints"] is None, storage
        assert "CHECKPOINT_CREATED" not in message, message
    finally:
        await host.close()


async def test_a_hosts_verify_sets_the_finding_it_shows(tmp_path: Path) -> None:
    """A row removed behind the open's back: the next verify in the host (a repair's)
    sets what status shows, it is not stuck at the open's finding."""
    db = tmp_path / "v.db"
    orphan = await _with_orphan(db)
    host = await Host.open_sim(db, Config(), speed=0)
    try:
        assert (await _status(host))[0]["checkpoints_unrecorded"] == 1
        store = host.engine.store
        assert store is not None
        async with host.engine.store_lock:
            await store.connection.execute("DELETE FROM checkpoints WHERE id = ?", (orphan,))
            await store.connection.commit()
        assert (await _status(host))[0]["checkpoints_unrecorded"] == 1, "kept, not looked for per call"
        res = await host.execute("/workflow-recovery repair-state", "operator")
        assert res["status"] == "success", res
        storage, message = await _status(host)
        assert storage["checkpoints_unrecorded"] == 0 and "CHECKPOINT_CREATED" not in message, storage
    finally:
        await host.close()

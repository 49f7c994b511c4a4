"""A live host that holds a database's lease but opened no endpoint is said as that,
running and unreachable, not "gone": its lock is held, so its process runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.host import client as client_mod
from core.host.attach import connect
from core.host.client import HostClient
from core.host.errors import HostUnresponsive
from core.host.lease import Lease, acquire, host_info


async def test_a_holder_without_an_endpoint_is_unreachable_not_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "e.db"
    lease = acquire(db, host_info(db, "sim", host=True))  # this process: a host still opening
    said = f"the host (pid {os.getpid()}) holds {db} but opened no endpoint within 0.2s ("
    try:
        with pytest.raises(HostUnresponsive) as exc:
            await connect(db, kind="exec", wait=0.2)
        assert str(exc.value).startswith(said) and "is gone" not in str(exc.value), exc.value
        assert str(exc.value).endswith("): it is running and cannot be reached")
        monkeypatch.setattr(client_mod, "STARTUP_WAIT_S", 0.2)
        client = HostClient.for_db(db)
        assert client is not None
        with pytest.raises(HostUnresponsive) as exc:
            await client.health()
        assert str(exc.value).startswith(said) and "is gone" not in str(exc.value), exc.value
    finally:
        lease.release()
    # The must-not: with nobody holding it, connect takes the lease itself (no host to be said).
    where = await connect(db, kind="exec", wait=0.2)
    assert isinstance(where, Lease)
    where.release()

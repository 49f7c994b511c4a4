"""An answer of the host that the console cannot read (broken HTTP on the event stream,
a health answer that is not JSON) is said as such, which answer and what was wrong
with it, and is not "the host is gone": the host still answers, commands still reach it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.host import client_http
from core.host.client import HostClient
from core.host.client_http import Chunked, Malformed
from tests.conftest import until

from .test_link_trouble import _a_command_runs_on, _attached


def _garble(monkeypatch: pytest.MonkeyPatch, at: str, raw: bytes) -> Callable[..., Awaitable[tuple[int, bytes]]]:
    """The host's answers to requests to ``at`` arrive as ``raw`` (status 200), after the
    real exchange (a command still runs); the real exchange, to put back."""
    real = HostClient._fetch

    async def garbled(self: HostClient, method: str, path: str, body: object) -> tuple[int, bytes]:
        got = await real(self, method, path, body)
        return (200, raw) if path == at else got

    monkeypatch.setattr(HostClient, "_fetch", garbled)
    return real


async def test_broken_http_on_the_event_stream_is_said_as_such_not_the_host_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, link, said, status = await _attached(tmp_path)
    try:
        assert link.replica is not None
        folded = link.replica.seq

        def broken(self: Chunked, data: bytes) -> bytes:
            raise Malformed("a chunk size line that is not hex")

        monkeypatch.setattr(client_http.Chunked, "feed", broken)  # the stream is the only chunked answer
        await host.execute("/host advance 1m")
        await until(lambda: said, "the unreadable answer said")
        assert link.gone is None and status == [], "the host answers: not gone"
        assert link.trouble == "not following (an unreadable answer to the event stream)"
        assert said[0].startswith(
            f"the console stopped following the host (pid {link.host_pid}): it answered the event stream with "
            "something the console could not read (a chunk size line that is not hex)"
        ), said
        assert "is gone" not in said[0] and link.replica.seq == folded
        await _a_command_runs_on(host, link)
    finally:
        await link.close()
        await host.close()


async def test_a_health_answer_that_is_not_json_is_said_and_its_recovery_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, link, said, status = await _attached(tmp_path)
    try:
        real = _garble(monkeypatch, "/v1/health", b"<html>proxy error</html>")
        await until(lambda: said, "the unreadable health answer said")
        assert link.gone is None and status == [], "the host answers its stream and commands: not gone"
        assert said[0].startswith(
            f"the host (pid {link.host_pid}) answered GET /v1/health with something the console could not read "
            "(answered 200 with something that is not JSON: '<html>proxy error</html>')"
        ), said
        assert "is gone" not in said[0] and link.stale == "health unreadable"
        monkeypatch.setattr(HostClient, "_fetch", real)
        await until(lambda: link.stale is None, "the health read again")
        assert said[-1] == f"the host (pid {link.host_pid}) answers its health check again" and len(said) == 2
        assert link.gone is None and status == []
    finally:
        await link.close()
        await host.close()


async def test_a_command_answered_unreadably_is_refused_as_such_and_the_host_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, link, said, status = await _attached(tmp_path)
    try:
        _garble(monkeypatch, "/v1/commands", b"\xff\xfe")
        res = await link.send("/coordination-hub checkpoint")
        assert res["status"] == "error" and res["error"]["code"] == "HOST_BAD_ANSWER", res
        assert "bytes that are not UTF-8" in res["error"]["message"] and "may have run" in res["error"]["message"]
        assert link.gone is None and status == [] and said == [] and link.client is not None, "the host is kept"
    finally:
        await link.close()
        await host.close()

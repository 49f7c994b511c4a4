"""``opsdeck script`` against a live host that refuses its event stream as busy (503, its
follower cap): the host is asked again meanwhile, and a wait that ends while it still
refuses stops the script with the host's refusal (exit 1), never taken for "nothing
happened": ``expect no TYPE within D`` must not pass on a stream it never saw."""

from __future__ import annotations

from pathlib import Path

from .test_cli_bad_answer import _verb
from .test_link_stream_refused import _hold_a_follower, _host

SCRIPT = "expect no WORKFLOW_FAILED within 1s\n"


async def test_a_negative_expectation_on_a_busy_stream_fails_with_the_refusal(
    tmp_path: Path, env: dict[str, str]
) -> None:
    host = await _host(tmp_path / "b.db", max_followers=1)
    held = await _hold_a_follower(host)
    script = tmp_path / "s.ops"
    script.write_text(SCRIPT)
    try:
        rc, err = await _verb(env, "script", "--db", str(host.db), str(script))
    finally:
        held.close()
        await host.close()
    assert rc == 1, err
    assert "is busy: it refused the event stream (503 TOO_MANY_FOLLOWERS" in err, err
    assert "Traceback" not in err and "is gone" not in err and "passed" not in err, err


async def test_the_same_expectation_passes_on_a_stream_the_host_serves(tmp_path: Path, env: dict[str, str]) -> None:
    """The must-not: with a follower's slot free the stream is followed and the script passes."""
    host = await _host(tmp_path / "f.db", max_followers=1)
    script = tmp_path / "s.ops"
    script.write_text(SCRIPT)
    try:
        rc, err = await _verb(env, "script", "--db", str(host.db), str(script))
    finally:
        await host.close()
    assert rc == 0, err

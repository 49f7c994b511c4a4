"""The agent host carries out a console's commands as they arrive, one at a time and in
order: a command that must wait (a run stopped before the next starts) holds back the
ones behind it; one that fails drops its connection, not the host."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from core.runtimes import agent_host


def host(tmp_path: Path) -> agent_host.Host:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 32)
    secret.chmod(0o600)
    args = argparse.Namespace(
        agent="a1",
        socket="@unused",
        secret_file=str(secret),
        heartbeat=1.0,
        grace=1.0,
        orphan=60.0,
        memory_mechanism="rlimit_as",
        cpu_mechanism="nice",
        cgroup=None,
        output_dir=None,
    )
    return agent_host.Host(args)


class Writer:
    closed = False

    def close(self) -> None:
        self.closed = True


async def test_commands_behind_one_that_waits_run_after_it_in_order(tmp_path: Path) -> None:
    h = host(tmp_path)
    done: list[str] = []
    release = asyncio.Event()

    async def stopping() -> None:
        await release.wait()
        done.append("start a (after the stop)")

    def handle(msg: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        if msg["op"] == "start" and msg["task"] == "a":
            return stopping()
        if msg["op"] == "bad":
            raise KeyError("task")
        done.append(f"{msg['op']} {msg.get('task', '')}".strip())
        return None

    h.runner.handle = handle  # type: ignore[method-assign]
    w, other = Writer(), Writer()
    ws, others = cast(asyncio.StreamWriter, w), cast(asyncio.StreamWriter, other)
    h.command({"op": "ping"}, ws)
    h.command({"op": "start", "task": "a"}, ws)
    h.command({"op": "bad"}, others)
    h.command({"op": "stop", "task": "a"}, ws)
    await asyncio.sleep(0)
    assert done == ["ping"], "nothing behind the waiting start ran before it"
    release.set()
    assert h.busy is not None
    await h.busy
    assert done == ["ping", "start a (after the stop)", "stop a"]
    assert other.closed and not w.closed, "the failed command dropped its own connection only"
    assert h.busy is None and not h.waiting
    h.command({"op": "ping"}, ws)
    assert done[-1] == "ping", "with nothing waiting, a command runs at once"

"""A chatty task on real agents: long lines, floods of lines, oversized partial results.

Its whole output lands in a per-task file; the log gets capped lines and a summary;
the run finishes. A message too large for the agent channel is skipped whole and
stands in for a failure with the reason, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from core.runtimes.agent_host import undeliverable
from core.runtimes.output import FILE_MAX, LINE_MAX, REPORT_BYTES, OutputFiles, TaskOutput
from core.runtimes.wire import MAX_LINE, OVERSIZE, CommandReader, LineFramer, encode, messages

from .local_harness import PY, drive, header, open_text, task_toml, wf_status, workflow_toml

CHATTY = (
    "import sys, json, time\n"
    "w = sys.stdout.write\n"
    "w('A' * (2 * 1024 * 1024) + '\\n')\n"  # one 2 MiB line
    "sys.stdout.flush(); time.sleep(2)\n"  # a few heartbeats carry it
    "for i in range(20000): w(f'line {i}\\n')\n"  # a flood
    "w('OPSDECK_PARTIAL ' + json.dumps({'big': 'x' * 100000}) + '\\n')\n"  # partial results too large
    "w('OPSDECK_PARTIAL {\"step\": 3}\\n')\n"
    "w('the end\\n')\n"
)


async def test_a_task_printing_a_2mib_line_completes_with_its_output_kept_whole(tmp_path: Path) -> None:
    text = header() + workflow_toml(
        "chatty",
        task_toml("t", [PY, "-c", CHATTY], "shell"),
        phase="talk",
        allocation={"cpu_cores": 1, "memory_gb": 1, "agents": 1},
    )
    engine, runtime, rec = await open_text(tmp_path / "o.db", text, tmp_path)
    try:
        await drive(engine, lambda: wf_status(engine, "chatty") in ("completed", "failed"), timeout=120)
        assert wf_status(engine, "chatty") == "completed"
        t = engine.state.tasks.get("chatty/t")
        assert t is None or t.status.value == "completed"
    finally:
        await runtime.shutdown()
        await engine.close()
    lines = [
        ln for e in rec.events if e.type in ("TASK_PROGRESS", "TASK_COMPLETED") for ln in e.data.get("output") or []
    ]
    assert lines, "no output reached the log"
    assert all(len(ln) <= LINE_MAX + 300 for ln in lines)
    assert sum(len(ln) for ln in lines) < 20 * (REPORT_BYTES + LINE_MAX), "the log took the flood"
    cut = next(ln for ln in lines if "bytes cut to" in ln)
    assert f"line of {2 * 1024 * 1024 + 1:,} bytes" in cut or f"line of {2 * 1024 * 1024:,} bytes" in cut
    m = re.search(r"whole in (\S+)\]", cut)
    assert m, cut
    path = Path(m.group(1))
    body = path.read_bytes()
    assert body.startswith(b"A" * (2 * 1024 * 1024) + b"\n") and body.endswith(b"the end\n")
    assert any("more output lines" in ln and str(path) in ln for ln in lines), "the flood was not summarised"
    assert any("OPSDECK_PARTIAL" in ln and "ignored" in ln for ln in lines)
    completed = [e for e in rec.events if e.type == "TASK_COMPLETED"]
    assert completed and "the end" in (completed[-1].data.get("output") or [])


def test_output_files_rotate_at_their_limit(tmp_path: Path) -> None:
    out = TaskOutput(str(tmp_path / "t.0.log"))
    chunk = b"z" * 1023 + b"\n"
    for _ in range(FILE_MAX // len(chunk) + 10):
        out.feed(chunk)
    out.finish()
    assert (tmp_path / "t.0.log.1").stat().st_size <= FILE_MAX
    assert 0 < (tmp_path / "t.0.log").stat().st_size <= FILE_MAX


def test_a_rotation_that_fails_closes_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotated part's name is taken (a directory with something in it): the rename
    fails, the output costs its file, said in ``error``, and the file's descriptor is
    closed once, not a second time by number (by then it may be another file's)."""
    taken = tmp_path / "t.0.log.1"
    taken.mkdir()
    (taken / "x").write_text("x")
    out = TaskOutput(str(tmp_path / "t.0.log"))
    closed: list[int] = []
    real = os.close

    def close(fd: int) -> None:
        closed.append(fd)
        real(fd)

    monkeypatch.setattr(os, "close", close)
    chunk = b"z" * 1023 + b"\n"
    for _ in range(FILE_MAX // len(chunk) + 10):
        out.feed(chunk)
    out.finish()
    assert out.error is not None and out.error.startswith("output file"), out.error
    assert len(closed) == 1, closed


def _printed(files: OutputFiles, task: str, attempt: int, data: bytes = b"out\n") -> TaskOutput:
    out = files.open(task, attempt)
    out.feed(data)
    out.finish()
    return out


def test_an_agent_keeps_its_newest_output_files_listing_its_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[object] = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda d: listed.append(d) or real(d))
    old = tmp_path / "left.0.log"  # left by an earlier host of the agent
    old.write_text("old")
    os.utime(old, (1, 1))
    (tmp_path / "left.0.log.1").write_text("its rotated part")
    files = OutputFiles(tmp_path, keep=2)
    _printed(files, "w/a", 1)
    assert old.exists(), "two files, the keep"
    _printed(files, "w/b", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w_a.1.log", "w_b.1.log"]
    _printed(files, "w/a", 1)  # the same run again: its file is the newest now
    _printed(files, "w/c", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w_a.1.log", "w_c.1.log"]
    assert len(listed) == 1, "the directory is listed when the first run starts, not before each"


def test_a_run_that_prints_nothing_leaves_no_file_and_takes_no_place(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, keep=1)
    kept = _printed(files, "w/a", 0)
    silent = files.open("w/b", 0)
    assert silent.finish() == []
    assert silent.file is None and silent.bytes_total == 0
    assert kept.file is not None and Path(kept.file).read_bytes() == b"out\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w_a.0.log"], "the silent run removed the one kept"


def test_a_replaced_run_still_writing_keeps_its_file_until_it_closes(tmp_path: Path) -> None:
    """keep=1: the next run's file is created while the replaced run still drains its
    output. The replaced run's file is not removed under it (its later bytes land in the
    file); it is removed once closed, the one kept being the newest."""
    files = OutputFiles(tmp_path, keep=1)
    replaced = files.open("w/a", 0)
    replaced.feed(b"before\n")
    following = _printed(files, "w/b", 0, b"next\n")
    replaced.feed(b"drained after the next run started\n")
    assert replaced.file is not None
    assert Path(replaced.file).read_bytes() == b"before\ndrained after the next run started\n"
    replaced.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w_b.0.log"]
    assert following.file is not None and Path(following.file).read_bytes() == b"next\n"


def test_a_run_started_again_never_shows_the_older_runs_output(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path)
    first = _printed(files, "w/a", 0, b"first\n")
    assert first.file is not None
    Path(first.file + ".1").write_text("first's rotated part")
    again = files.open("w/a", 0)
    assert not os.path.exists(first.file) and not os.path.exists(first.file + ".1")
    again.finish()
    assert again.file is None and list(tmp_path.iterdir()) == []
    _printed(OutputFiles(tmp_path), "w/a", 0, b"third\n")  # a later host lists the file, then replaces it
    files = OutputFiles(tmp_path)
    files.open("w/a", 0).finish()
    assert list(tmp_path.iterdir()) == []


def test_an_output_file_never_follows_a_planted_link(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (tmp_path / "t.0.log").symlink_to(target)
    out = TaskOutput(str(tmp_path / "t.0.log"))
    assert out.feed(b"hello\n") == ["hello"]
    assert out.path is None and out.file is None and out.error and "t.0.log" in out.error
    assert out.feed(b"again\n") == ["again"]
    assert target.read_text() == "keep"


async def test_a_line_over_the_channel_limit_is_skipped_whole_and_reported() -> None:
    reader = asyncio.StreamReader(limit=MAX_LINE)
    big = b'{"t":"heartbeat","output":["' + b"q" * (MAX_LINE + 10) + b'"]}\n'
    reader.feed_data(encode({"t": "hello"}) + big + encode({"t": "finished", "task": "x"}))
    reader.feed_eof()
    got = [m async for m in messages(reader)]
    assert got == [{"t": "hello"}, {"t": OVERSIZE, "bytes": len(big)}, {"t": "finished", "task": "x"}]


def test_a_report_too_large_to_send_becomes_the_tasks_failure_with_the_reason() -> None:
    report = {"t": "finished", "task": "w/t", "attempt": 1, "rc": 0, "output": ["x" * 10]}
    sub = undeliverable(report, MAX_LINE + 1)
    assert sub["t"] == "failed" and sub["task"] == "w/t" and sub["attempt"] == 1
    assert "over the channel's limit" in sub["error"]
    assert len(encode(sub)) < 1024
    # Not a task's end: no failure is made up.
    assert undeliverable({"t": "heartbeat", "task": "w/t"}, MAX_LINE + 1)["t"] == "heartbeat"
    assert json.loads(encode(sub))


STREAM = (
    encode({"t": "hello"})
    + b"not json\n"
    + b'{"t":"heartbeat","output":["'
    + b"q" * 100
    + b'"]}\n'
    + encode({"t": "finished", "task": "x"})
    + b"\xff\xfe\n"
    + encode({"t": "started", "task": "y"})
    + b'{"t":"last"}'
)


@pytest.mark.parametrize("chunk", [1, 7, 64, 65, len(STREAM)])
async def test_the_hosts_framing_reads_what_the_consoles_reader_reads(chunk: int) -> None:
    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(STREAM)
    reader.feed_eof()
    want = [m async for m in messages(reader)]
    framer = LineFramer(64)
    got = [m for i in range(0, len(STREAM), chunk) for m in framer.feed(STREAM[i : i + chunk])] + framer.end()
    assert got == want
    assert got[1] == {"t": OVERSIZE, "bytes": 103 + 30 - 1} and got[-1] == {"t": "last"}


async def test_a_hosts_reader_gives_the_handshake_its_line_and_each_command_once_in_order() -> None:
    reader = CommandReader(MAX_LINE)
    reader.feed_data(b'{"op":"auth"}\n{"op":"ping"}\n{"op":')
    assert await reader.readline() == b'{"op":"auth"}\n'
    got: list[object] = []
    ended: list[bool] = []
    reader.feed_data(b'"start"}\n')
    assert got == [], "nothing is handed on before there is somewhere to hand it"
    reader.deliver(got.append, lambda: ended.append(True))
    assert got == [{"op": "ping"}, {"op": "start"}]
    reader.feed_data(encode({"op": "stop"}))
    reader.feed_eof()
    assert got == [{"op": "ping"}, {"op": "start"}, {"op": "stop"}] and ended == [True]

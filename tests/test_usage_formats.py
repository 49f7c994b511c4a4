"""Usage lines in the three published forms, read from transcripts the tests write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.usage.formats import LINE_MAX, Malformed, RateLimit, read_line
from core.usage.meter import Meter

REPO = Path(__file__).resolve().parents[1]
AGENT = str(REPO / "examples" / "fake_agent.py")


def _meter(lines: list[str]) -> Meter:
    m = Meter()
    for ln in lines:
        m.take(ln, now=1000.0)
    return m


def _agent(*args: str, attempt: int = 1) -> list[str]:
    p = subprocess.run(
        [sys.executable, AGENT, "--interval", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"OPSDECK_ATTEMPT": str(attempt), "PATH": "/usr/bin:/bin"},
    )
    return p.stdout.splitlines()


def test_claude_stream_json_counts_each_message_once_and_the_result_replaces_the_messages() -> None:
    session = "s1"

    def msg(mid: str, inp: int, out: int, read: int = 0) -> str:
        usage = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read}
        return json.dumps({"type": "assistant", "session_id": session, "message": {"id": mid, "usage": usage}})

    lines = [
        json.dumps({"type": "system", "subtype": "init", "session_id": session}),
        msg("m1", 100, 10, 50),
        msg("m1", 100, 12, 50),  # the same message printed again (a later content block)
        msg("m2", 200, 20),
        json.dumps({"type": "user", "message": {"content": []}}),
    ]
    m = _meter(lines)
    r = m.report()
    assert (r["input_tokens"], r["output_tokens"], r["cached_input_tokens"]) == (350, 32, 50)
    assert r["cost_usd"] == 0.0, "stream-json messages carry no cost"
    final = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "session_id": session,
        "total_cost_usd": 0.125,
        "usage": {"input_tokens": 300, "cache_read_input_tokens": 50, "output_tokens": 40},
    }
    m.take(json.dumps(final), now=1000.0)
    r = m.report()
    assert (r["input_tokens"], r["output_tokens"], r["cost_usd"]) == (350, 40, 0.125), "the result is the total"
    assert r["by_source"]["claude"]["cost_usd"] == 0.125 and set(r["by_source"]) == {"claude"}


def test_codex_turns_add_up_and_cached_is_part_of_input() -> None:
    lines = [
        '{"type":"thread.started","thread_id":"t"}',
        '{"type":"turn.completed","usage":{"input_tokens":1200,"cached_input_tokens":200,"output_tokens":345}}',
        '{"type":"item.completed","item":{"type":"agent_message","text":"x"}}',
        '{"type":"turn.completed","usage":{"input_tokens":800,"cached_input_tokens":0,"output_tokens":5}}',
    ]
    r = _meter(lines).report()
    assert (r["input_tokens"], r["cached_input_tokens"], r["output_tokens"]) == (2000, 200, 350)


def test_opsdeck_lines_are_increments_with_cost() -> None:
    lines = [
        'OPSDECK_USAGE {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5, "model": "m"}',
        'OPSDECK_USAGE {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.25}',
        "OPSDECK_USAGEX not ours",
    ]
    r = _meter(lines).report()
    assert (r["input_tokens"], r["output_tokens"], r["cost_usd"], r["models"]) == (11, 6, 0.75, ["m"])


def test_malformed_lines_are_counted_not_fatal() -> None:
    bad = [
        "OPSDECK_USAGE {not json",
        'OPSDECK_USAGE {"input_tokens": -5}',
        'OPSDECK_USAGE {"input_tokens": "many"}',
        "OPSDECK_USAGE []",
        '{"type":"result","usage":"lots"}',
        '{"type":"assistant","message":{"usage":{"input_tokens":3}}}',  # usage without a message id
        '{"type":"turn.completed","usage":{"input_tokens":1.5}}',
        "{" + "x" * (LINE_MAX + 10),
        'OPSDECK_RATE_LIMITED {"reset_at": "tomorrow"}',
    ]
    fine = ["{not json at all", '{"type": 7}', '{"type":"item.updated"}', "plain output", ""]
    m = _meter(bad + fine)
    r = m.report()
    assert r["malformed"] == len(bad)
    assert r["input_tokens"] == r["output_tokens"] == 0 and r["rate_limit"] is None
    assert r["malformed_last"]


def test_rate_limits_in_each_form() -> None:
    now = 1000.0
    a = read_line('OPSDECK_RATE_LIMITED {"reset_at": "2026-01-01T00:00:30Z"}', now)
    assert isinstance(a, RateLimit) and a.reset_at == 1767225630.0
    b = read_line('OPSDECK_RATE_LIMITED {"retry_after_s": 30}', now)
    assert isinstance(b, RateLimit) and b.reset_at == 1030.0
    m = _meter(['{"type":"result","is_error":true,"result":"Claude AI usage limit reached|1753077600"}'])
    assert m.rate_limit is not None and m.rate_limit.reset_at == 1753077600.0
    m = _meter(['{"type":"result","is_error":true,"api_error_status":429,"result":"API Error"}'])
    assert m.rate_limit is not None and m.rate_limit.reset_at is None
    m = _meter(['{"type":"turn.failed","error":{"message":"429 Too Many Requests"}}'])
    assert m.rate_limit is not None and m.rate_limit.source == "codex"
    # Failures that are not limits are not rate limits.
    m = _meter(['{"type":"result","is_error":true,"result":"tool crashed"}', '{"type":"error","message":"boom"}'])
    assert m.rate_limit is None
    assert isinstance(read_line('OPSDECK_RATE_LIMITED {"reset_at": 5}', now), Malformed)


def test_the_example_agent_prints_what_each_parser_reads() -> None:
    common = ["--turns", "3", "--input-tokens", "1000", "--output-tokens", "200", "--cost", "0.01"]
    claude = _meter(_agent("--format", "claude", *common)).report()
    codex = _meter(_agent("--format", "codex", *common)).report()
    ops = _meter(_agent("--format", "opsdeck", *common)).report()
    for r in (claude, codex, ops):
        assert (r["input_tokens"], r["output_tokens"], r["malformed"]) == (3000, 600, 0), r
    assert claude["cost_usd"] == ops["cost_usd"] == 0.03 and codex["cost_usd"] == 0.0
    limited = _meter(_agent("--format", "codex", "--rate-limit-on-attempt", "1", *common)).report()
    assert limited["rate_limit"] is not None and limited["rate_limit"]["reset_at"] is not None
    assert _meter(_agent("--format", "codex", "--rate-limit-on-attempt", "1", *common, attempt=2)).rate_limit is None

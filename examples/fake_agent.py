#!/usr/bin/env python3
"""A small stand-in for an AI coding agent CLI: what it prints is chosen by flags.

It prints what the real CLIs print, so opsdeck reads it the way it reads them:

  --format claude   Claude Code ``-p ... --output-format stream-json --verbose`` lines:
                    a ``system`` init line, per turn an ``assistant`` message with its
                    ``message.usage`` (printed once per content block, as the CLI does),
                    and a final ``result`` line with the session's ``usage`` and ``total_cost_usd``.
  --format codex    Codex ``exec --json`` lines: ``thread.started``, per turn ``turn.started``,
                    an ``item.completed`` message and ``turn.completed`` with the turn's ``usage``.
  --format opsdeck  one ``OPSDECK_USAGE {...}`` line per turn.

Other behaviour:
  --rate-limit-on-attempt N   on attempts 1..N (``$OPSDECK_ATTEMPT``) stop after the turns with
                              the format's rate-limit report (Claude: an error result saying
                              "usage limit reached|<epoch>"; Codex: a ``turn.failed`` 429;
                              opsdeck: ``OPSDECK_RATE_LIMITED {"reset_at": ...}``) and exit 1.
  --reset-in S                the limit resets S seconds from now (default 20).
  --wait-for-reset            after the rate-limit report, keep running (as an agent that waits
                              for its limit to reset would), finish the turns, exit 0.
  --malformed N               also print N usage lines that are not well formed.
  --ask TEXT                  print TEXT as a question and wait for an answer on stdin
                              (the ``waiting_input`` case); the answer is echoed.
  --hang                      after the turns, keep running (sleep) until stopped.
  --write FILE                write FILE in the working directory (the answer in it): a
                              change to see in the task's worktree diff.

Progress is reported with ``OPSDECK_PROGRESS`` lines. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime


def out(obj: object) -> None:
    print(obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")), flush=True)


def progress(i: int, n: int, what: str) -> None:
    out(f"OPSDECK_PROGRESS {i / max(n, 1):.3f} {what}")


def claude(args: argparse.Namespace, limited: bool, reset_at: float) -> None:
    session = str(uuid.uuid4())
    out({"type": "system", "subtype": "init", "session_id": session, "model": args.model, "tools": []})
    total_in = total_out = 0
    for i in range(args.turns):
        usage = {
            "input_tokens": args.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": args.cached_tokens,
            "output_tokens": args.output_tokens,
        }
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        blocks = [{"type": "text", "text": f"turn {i + 1}: working"}, {"type": "text", "text": "still working"}]
        for block in blocks:  # the CLI prints one line per content block, each with the message's usage
            out(
                {
                    "type": "assistant",
                    "message": {
                        "id": msg_id,
                        "type": "message",
                        "role": "assistant",
                        "model": args.model,
                        "content": [block],
                        "usage": usage,
                    },
                    "parent_tool_use_id": None,
                    "session_id": session,
                }
            )
        total_in += args.input_tokens
        total_out += args.output_tokens
        progress(i + 1, args.turns, f"turn {i + 1}/{args.turns}")
        time.sleep(args.interval)
    result: dict[str, object] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": int(args.turns * args.interval * 1000),
        "num_turns": args.turns,
        "result": "done",
        "session_id": session,
        "total_cost_usd": round(args.cost * args.turns, 6),
        "usage": {
            "input_tokens": total_in,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": args.cached_tokens * args.turns,
            "output_tokens": total_out,
        },
    }
    if limited:
        result.update(
            subtype="error_during_execution", is_error=True, result=f"Claude AI usage limit reached|{int(reset_at)}"
        )
    out(result)


def codex(args: argparse.Namespace, limited: bool, reset_at: float) -> None:
    out({"type": "thread.started", "thread_id": str(uuid.uuid4())})
    for i in range(args.turns):
        out({"type": "turn.started"})
        out({"type": "item.completed", "item": {"id": f"item_{i}", "type": "agent_message", "text": f"turn {i + 1}"}})
        out(
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": args.input_tokens + args.cached_tokens,
                    "cached_input_tokens": args.cached_tokens,
                    "output_tokens": args.output_tokens,
                },
            }
        )
        progress(i + 1, args.turns, f"turn {i + 1}/{args.turns}")
        time.sleep(args.interval)
    if limited:
        out({"type": "turn.started"})
        out({"type": "turn.failed", "error": {"message": f"429 Too Many Requests: rate limit reached|{int(reset_at)}"}})


def opsdeck(args: argparse.Namespace, limited: bool, reset_at: float) -> None:
    for i in range(args.turns):
        out(
            "OPSDECK_USAGE "
            + json.dumps(
                {
                    "input_tokens": args.input_tokens + args.cached_tokens,
                    "output_tokens": args.output_tokens,
                    "cost_usd": args.cost,
                    "model": args.model,
                }
            )
        )
        progress(i + 1, args.turns, f"turn {i + 1}/{args.turns}")
        time.sleep(args.interval)
    if limited:
        iso = datetime.fromtimestamp(reset_at, UTC).isoformat()
        out("OPSDECK_RATE_LIMITED " + json.dumps({"reset_at": iso, "reason": "provider returned 429"}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", choices=["claude", "codex", "opsdeck"], default="claude")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.5, help="seconds per turn")
    p.add_argument("--input-tokens", type=int, default=1000, help="uncached input tokens per turn")
    p.add_argument("--cached-tokens", type=int, default=0, help="input tokens read from a cache per turn")
    p.add_argument("--output-tokens", type=int, default=200, help="output tokens per turn")
    p.add_argument("--cost", type=float, default=0.01, help="USD per turn (Claude and opsdeck lines)")
    p.add_argument("--model", default="fake-model-1")
    p.add_argument("--rate-limit-on-attempt", type=int, default=0, metavar="N")
    p.add_argument("--reset-in", type=float, default=20.0, metavar="S")
    p.add_argument("--wait-for-reset", action="store_true")
    p.add_argument("--malformed", type=int, default=0, metavar="N")
    p.add_argument("--ask", default=None, metavar="TEXT")
    p.add_argument("--hang", action="store_true")
    p.add_argument(
        "--write", default=None, metavar="FILE", help="write FILE in the working directory (a change to diff)"
    )
    args = p.parse_args(argv)

    attempt = int(os.environ.get("OPSDECK_ATTEMPT", "1") or 1)
    limited = attempt <= args.rate_limit_on_attempt
    reset_at = time.time() + args.reset_in
    for i in range(args.malformed):
        out(
            ["OPSDECK_USAGE {not json", 'OPSDECK_USAGE {"input_tokens": -5}', '{"type":"result","usage":"lots"}'][i % 3]
        )
    if args.ask is not None:
        print(args.ask, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            print("no answer (stdin closed)", flush=True)
            return 3
        print(f"answer: {answer.strip()}", flush=True)
        args.answer = answer.strip()
    {"claude": claude, "codex": codex, "opsdeck": opsdeck}[args.format](args, limited, reset_at)
    if limited and args.wait_for_reset:
        while time.time() < reset_at:
            time.sleep(0.2)
        print(f"limit reset; {args.turns} more turn(s)", flush=True)
        {"claude": claude, "codex": codex, "opsdeck": opsdeck}[args.format](args, False, reset_at)
    elif limited:
        return 1
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(f"# written by {os.environ.get('OPSDECK_TASK', 'fake_agent')}: {getattr(args, 'answer', '')}\n")
        print(f"wrote {args.write}", flush=True)
    while args.hang:
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

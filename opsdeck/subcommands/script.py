"""``opsdeck script [--db PATH] FILE``: run a script of commands, event lines and expectations.

Without --db the script runs on a fresh demo fleet in a temporary database; with
--db an empty database gets the demo fleet first and an existing one is continued.
Event lines are printed as they happen. Exit 0 when every step passes, 1 at the
first failed expectation or command (its line is named on stderr), 2 when the
script is malformed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.commands.script import FORMAT, ScriptError, ScriptRunner, parse_script
from core.config import load_config
from core.session import open_sim


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "script",
        help="run a headless script of slash commands, event lines and expectations",
        description="Run a script (see examples/scripts/*.ops).\n\n" + FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="the script")
    p.add_argument("--db", metavar="PATH", help="database file (default: a fresh demo fleet in a temporary database)")
    p.add_argument("--seed", type=int, default=0, help="seed of a new demo fleet (default 0)")
    p.add_argument("--quiet", action="store_true", help="print only the step results, not every event line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"opsdeck: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        steps = parse_script(text)
    except ScriptError as exc:
        print(f"{path}:{exc.line}: {exc.message}", file=sys.stderr)
        return 2
    if args.db:
        return asyncio.run(_run(Path(args.db), config, args, steps, path))
    with tempfile.TemporaryDirectory(prefix="opsdeck-script-") as tmp:
        return asyncio.run(_run(Path(tmp) / "script.db", config, args, steps, path))


async def _run(db: Path, config: Any, args: argparse.Namespace, steps: list, path: Path) -> int:  # type: ignore[type-arg]
    engine = await open_sim(db, config, seed=args.seed, demo=True)
    closed = False

    def out(line: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            sys.stdout.write(line + "\n")
        except BrokenPipeError:
            closed = True

    try:
        runner = ScriptRunner(engine, out, quiet=args.quiet)
        try:
            result = await runner.run(steps)
        except ScriptError as exc:
            print(f"{path}:{exc.line}: {exc.message}", file=sys.stderr)
            return 2
    finally:
        await engine.close()
        if not closed:
            sys.stdout.flush()
    if not result.ok:
        print(f"{path}:{result.failed_line}: {result.message}", file=sys.stderr)
        return 1
    print(f"# {path}: {result.steps_run} step(s) passed", file=sys.stderr)
    return 0

"""``opsdeck script [--db PATH] FILE``: run a script of commands, event lines and expectations.

Without --db the script runs on a fresh demo fleet in a temporary database; with
--db an empty database gets the demo fleet first and an existing one is continued
(a missing one is refused unless --create). When a host runs the database the
steps go to it through its endpoint (core.host.script): commands and event lines
on the one command path, expectations on its event stream.
Event lines are printed as they happen. Exit 0 when every step passes, 1 at the
first failed expectation or command (its line is named on stderr), 2 when the
script is malformed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.host.attach import connect
from core.host.client import HostClient
from core.host.paths import check_database

from ..output import json_line

if TYPE_CHECKING:
    from core.commands.script import Step

# The script's parser and runner, the command set and the engine load in the verb's run
# (not to build the parser).

FORMAT = """\
One step per line; blank lines and lines starting with # are ignored.

  /component operation ['<json>' ...] [--flag]   a slash command; its JSON may span lines
  TYPE:component:scope:{json}                    an event line, injected as if observed
  advance DURATION        (alias: wait)          run the simulated clock, e.g. 30s, 5m, 1h
  expect TYPE [field=value ...] [within DURATION]
        an event of TYPE whose data fields match happened since the last expectation;
        with `within`, the clock runs (in sample steps) up to DURATION waiting for it
  expect no TYPE [field=value ...] [within DURATION]
        no such event since the last expectation (after running the clock DURATION)
  expect-error [CODE]                            the previous command failed (with CODE)
  fault fail AGENT [REASON] | slow AGENT FACTOR | partition AGENT... | heal [AGENT...]
        | spike CORES GB [DURATION] | leak AGENT MB_PER_S | degrade RATE | restore-speed
        a fault in the simulated runtime

Field values are JSON when they parse (3, true, "x"), text otherwise; a dotted name
reaches into nested data (system_utilization.cpu); a list field matches if it
contains the value. A command that fails stops the script unless the next step is
expect-error. Exit status: 0 all steps passed, 1 an expectation or command failed
(named by line), 2 the script itself is malformed, 3 the live host answered something
the client cannot read.
"""
"""The script format (``core.commands.script`` parses and runs it), shown by ``opsdeck script --help``."""


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
    p.add_argument("--create", action="store_true", help="make --db (with the demo fleet) if it does not exist")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per event or step result, then one result object"
    )
    p.set_defaults(func=run)


def record(line: str) -> dict[str, Any]:
    """A printed script line as a JSON object: a step result (``# line N: ...``) or an event."""
    from core.events import EventLineError, parse_line

    m = _STEP_RE.match(line)
    if m:
        return {"kind": "step", "line": int(m.group(1)), "text": m.group(2)}
    try:
        ev = parse_line(line)
    except EventLineError:
        return {"kind": "note", "text": line}
    return {"kind": "event", "type": ev.type, "component": ev.component, "scope": ev.scope, "data": ev.data}


_STEP_RE = re.compile(r"^# line (\d+): (.*)$")


def run(args: argparse.Namespace) -> int:
    from core.commands.script import ScriptError, parse_script
    from core.config import load_config

    config = load_config(args.config)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"opsdeck: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        print(f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); nothing was run", file=sys.stderr)
        return 2
    try:
        steps = parse_script(text)
    except ScriptError as exc:
        print(f"{path}:{exc.line}: {exc.message}", file=sys.stderr)
        return 2
    if args.db:
        check_database(Path(args.db), args.create)
        return asyncio.run(_run(Path(args.db), config, args, steps, path))
    with tempfile.TemporaryDirectory(prefix="opsdeck-script-") as tmp:
        return asyncio.run(_run(Path(tmp) / "script.db", config, args, steps, path))


def _offline_refusal(engine: Any, db: Path, steps: list[Step]) -> tuple[int, str] | None:
    """The first step that would change a real fleet whose host is down (line, why)."""
    from core.host.offline import command_refusal, fleet_runtime, refusal

    runtime = fleet_runtime(engine.state)
    if runtime is None:
        return None
    for st in steps:
        if st.kind == "command":
            why = command_refusal(engine.state, db, st.text)
            if why:
                return st.line, why
        elif st.kind in ("event", "advance", "fault"):
            return st.line, refusal(db, runtime, f"a {st.kind} step")
    return None


async def _run(db: Path, config: Any, args: argparse.Namespace, steps: list[Step], path: Path) -> int:
    closed = False

    def out(line: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            sys.stdout.write((json_line(record(line)) if args.json else line) + "\n")
        except BrokenPipeError:
            closed = True

    where = await connect(db, kind="script")
    try:
        if isinstance(where, HostClient):
            from core.host.script import HostScriptRunner

            print(f"# {path}: running against the live host (pid {where.pid}) of {db}", file=sys.stderr)
            remote = HostScriptRunner(where, out, quiet=args.quiet)
            await remote.start()
            try:
                result = await remote.run(steps)
            finally:
                await remote.stop()
                await where.close()
        else:
            from core.commands.script import ScriptError, ScriptRunner
            from core.host.language import services
            from core.session import open_sim

            engine = await open_sim(db, config, seed=args.seed, demo=True)
            try:
                refused = _offline_refusal(engine, db, steps)
                if refused:
                    print(f"{path}:{refused[0]}: {refused[1]}; no step was run", file=sys.stderr)
                    return 2
                try:
                    runner = ScriptRunner(engine, out, quiet=args.quiet, services=services(engine))
                    result = await runner.run(steps)
                except ScriptError as exc:
                    print(f"{path}:{exc.line}: {exc.message}", file=sys.stderr)
                    return 2
            finally:
                await engine.close()
    finally:
        if not isinstance(where, HostClient):
            where.release()
        if not closed:
            sys.stdout.flush()
    if args.json and not closed:
        sys.stdout.write(
            json_line(
                {
                    "summary": "script",
                    "file": str(path),
                    "ok": result.ok,
                    "steps_run": result.steps_run,
                    "failed_line": result.failed_line,
                    "message": result.message,
                }
            )
            + "\n"
        )
    if not result.ok:
        print(f"{path}:{result.failed_line}: {result.message}", file=sys.stderr)
        return 1
    print(f"# {path}: {result.steps_run} step(s) passed", file=sys.stderr)
    return 0

"""``opsdeck run FILE.toml``: real workflows of real processes on this machine.

The file is validated first (every problem reported, nothing started). Then the
local runtime starts the pools' agent hosts and the workflows. Headless, event lines
are printed until every workflow has ended: exit 0 if all completed, 1 otherwise.
Run again on the same ``--db`` after a crash and the run resumes: live agents are
adopted, gone ones are failed and their tasks recovered, completed tasks stay done.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from core.config import Config, load_config
from core.models import TERMINAL_WORKFLOW, WorkflowStatus
from core.workflow_file import WorkflowFileError, config_problems, load_workflow_file

from ..paths import data_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a workflow file of real commands on local agent processes",
        description="Run the pools and workflows of a TOML workflow file as real OS processes on this machine. "
        "With --db an existing run is resumed: agents still running are adopted, completed tasks are not run again.",
    )
    p.add_argument("file", metavar="FILE.toml", help="workflow file (see examples/)")
    p.add_argument("--db", metavar="PATH", help="database file (default: <data dir>/runs/<file name>.db)")
    p.add_argument("--headless", action="store_true", help="no console: print event lines until all workflows end")
    p.add_argument("--quiet", action="store_true", help="headless: print only workflow outcomes")
    p.add_argument("--incidents", choices=("off", "auto"), default="off",
                   help="headless: detect incidents on the real measurements and run their plans, auto-approved")
    p.set_defaults(func=run)


def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    d = data_dir() / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{Path(args.file).stem}.db"


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        wfile, specs = load_workflow_file(args.file)
        problems = config_problems(wfile, specs, config)
        if problems:
            raise WorkflowFileError(args.file, problems)
    except WorkflowFileError as exc:
        print(f"opsdeck: {len(exc.problems)} problem(s) in the workflow file; nothing was started", file=sys.stderr)
        for p in exc.problems:
            print(f"  {exc.path}: {p}", file=sys.stderr)
        return 2
    db = _db_path(args)
    db.parent.mkdir(parents=True, exist_ok=True)
    if args.headless:
        return asyncio.run(headless(db, config, wfile, specs, quiet=args.quiet, incidents=args.incidents == "auto"))
    from ..console import run_console

    async def open_session() -> Any:
        from core.runtimes.local import open_local

        return await open_local(db, wfile, specs, config)

    return run_console(db=db, config=config, session=open_session)


def finished(engine: Any) -> bool:
    """Every workflow ended, or waits on one that can no longer complete."""
    wfs = engine.state.workflows
    for w in wfs.values():
        if w.status in TERMINAL_WORKFLOW:
            continue
        if w.status is WorkflowStatus.PENDING and _blocked(engine, w.id, set()):
            continue
        return False
    return True


def _blocked(engine: Any, wf_id: str, seen: set[str]) -> bool:
    if wf_id in seen:
        return False
    seen.add(wf_id)
    w = engine.state.workflows[wf_id]
    for d in w.depends_on:
        dw = engine.state.workflows.get(d)
        if dw is None:
            continue
        if dw.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED):
            return True
        if dw.status is WorkflowStatus.PENDING and _blocked(engine, d, seen):
            return True
    return False


async def headless(db: Path, config: Config, wfile: Any, specs: Any, quiet: bool = False, tick: float = 0.1,
                   incidents: bool = False) -> int:
    from core.runtimes.local import open_local

    from .demo import LinePrinter

    printer = LinePrinter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before any agent starts: a stop always cleans up
        loop.add_signal_handler(sig, stop.set)
    engine, runtime = await open_local(db, wfile, specs, config, subscriber=None if quiet else printer)
    manager = None
    if incidents:
        from core.incidents.manager import IncidentManager

        manager = IncidentManager(engine, approve_mode="auto")
    m = runtime.mechanisms
    print(f"# opsdeck run {db}: limits memory={m.memory} cpu={m.cpu}; agents adopted={runtime.adopted} "
          f"recovered={runtime.recovered}", file=sys.stderr)
    if finished(engine):
        print(f"# every workflow of this file already ended in {db}; nothing to run (use another --db to run it again)",
              file=sys.stderr)
    try:
        while not stop.is_set() and not finished(engine):
            await asyncio.sleep(tick)
            await engine.flush()
            await engine.maintain()
            if manager is not None:
                await manager.pump()
        for w in sorted(engine.state.workflows.values(), key=lambda w: w.id):
            if w.status is WorkflowStatus.PENDING and _blocked(engine, w.id, set()):
                engine.cancel_workflow(w.id, actor="opsdeck run")
    finally:
        await runtime.shutdown()
        await engine.close()
    results = {w.id: w.status.value for w in engine.state.workflows.values()}
    for wid, status in sorted(results.items()):
        print(f"# {wid}: {status}", file=sys.stderr)
    if stop.is_set():
        return 130
    return 0 if all(s == "completed" for s in results.values()) else 1

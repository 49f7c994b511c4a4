"""``opsdeck run FILE.toml``: real workflows of real processes on this machine.

The file is validated first (every problem reported, nothing started). Then the
local runtime starts the pools' agent hosts and the workflows. Headless, event lines
are printed until every workflow has ended: exit 0 if all completed, 1 otherwise.
Run again on the same ``--db`` after a crash and the run resumes: live agents are
adopted, gone ones are failed and their tasks recovered, completed tasks stay done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.host.lease import current_holder
from core.runtimes.real import REAL_RUNTIMES

from ..paths import data_dir

if TYPE_CHECKING:
    import asyncio

    from core.config import Config
    from core.events import Event
    from core.workflow_file import WorkflowFileError

# The config, the models and the workflow file's reader (pydantic) load in the verb's run
# (not to build the parser).


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
    p.add_argument("--json", action="store_true", help="headless: one JSON object per event, then one result object")
    p.add_argument(
        "--incidents",
        choices=("off", "auto"),
        default="off",
        help="headless: detect incidents on the real measurements and run their plans, auto-approved",
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="also serve the control endpoint on TCP when this process hosts (commands need the token in <db>.token)",
    )
    add_runtime_arguments(p)
    p.set_defaults(func=run, early=launch_early)


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """``--runtime local|ray`` and ``--address`` (run and serve), from the runtimes' declarations."""
    p.add_argument(
        "--runtime",
        choices=tuple(REAL_RUNTIMES),
        default="local",
        help="; ".join(f"{r.name}: {r.help}" for r in REAL_RUNTIMES.values()),
    )
    clusters = " or ".join(r.name for r in REAL_RUNTIMES.values() if r.cluster)
    p.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help=f"{clusters}: join this cluster (never shut down); without it a local instance is started and stopped",
    )


def runtime_problem(args: argparse.Namespace) -> str | None:
    """Why the runtime asked for cannot be used (checked before anything is created), or None."""
    kind = REAL_RUNTIMES[args.runtime]
    if args.address and not kind.cluster:
        clusters = " or ".join(f"--runtime {r.name}" for r in REAL_RUNTIMES.values() if r.cluster)
        return f"--address is for {clusters}"
    return kind.problem(args.address)


def db_path(args: argparse.Namespace, make: bool = True) -> Path:
    """``--db``, else ``<data dir>/runs/<file name>.db`` (``make``: its directory is made)."""
    if args.db:
        return Path(args.db)
    d = data_dir() / "runs"
    if make:
        d.mkdir(parents=True, exist_ok=True)
    return d / f"{Path(args.file).stem}.db"


def load_file(path: str, config: Config) -> tuple[Any, Any] | None:
    """The workflow file and its specs, or None after printing every problem."""
    from core.workflow_file import WorkflowFileError, config_problems, load_workflow_file

    try:
        wfile, specs = load_workflow_file(path)
        problems = config_problems(wfile, specs, config)
        if problems:
            raise WorkflowFileError(path, problems)
    except WorkflowFileError as exc:
        print_problems(exc)
        return None
    return wfile, specs


def prepare(args: argparse.Namespace, config: Config, verb: str) -> tuple[Any, Any, Path] | None:
    """A workflow file's run, checked before anything starts: (file, specs, database),
    or None once every problem has been printed (``opsdeck run`` and ``opsdeck serve``)."""
    loaded = load_file(args.file, config)
    if loaded is None:
        return None
    problem = runtime_problem(args)
    if problem:
        print(f"{verb}: {problem}; nothing was started", file=sys.stderr)
        return None
    return loaded[0], loaded[1], db_path(args)


def print_problems(exc: WorkflowFileError) -> None:
    print(f"opsdeck: {len(exc.problems)} problem(s) in the workflow file; nothing was started", file=sys.stderr)
    for p in exc.problems:
        print(f"  {exc.path}: {p}", file=sys.stderr)


def launch_early(args: argparse.Namespace) -> None:
    """As soon as the command line is read, before the config and the file are: start the
    agent hosts' launcher of a local run (:func:`core.runtimes.launching.start_early`),
    whose start then overlaps the console's. None for a database a live host holds (the
    console is attached, or the run refused, instead)."""
    from core.collector import hold_for_start
    from core.runtimes.launching import run_dir_for, start_early

    hold_for_start()  # until the modules and the file are loaded (see run)
    db = db_path(args, make=False)
    if args.runtime == "local" and not (db.is_file() and current_holder(db) is not None):
        start_early(run_dir_for(db))


def run(args: argparse.Namespace) -> int:
    """The verb, the collector held off since :func:`launch_early` until the run's modules
    and file are loaded (a headless run's ``freeze_loaded``, the console's start, or the
    verb's end in :func:`opsdeck.cli.main`)."""
    from core.collector import end_start_hold
    from core.config import load_config

    config = load_config(args.config)
    prepared = prepare(args, config, "opsdeck")
    if prepared is None:
        return 2
    import asyncio  # only now: `opsdeck run --help` and a file with problems need no event loop

    wfile, specs, db = prepared
    # A live host holding the database gets the console attached (or the run refused) instead.
    held = db.is_file() and current_holder(db) is not None
    if args.runtime == "local" and not held:  # the launcher started early goes on with the run
        from core.runtimes.launching import keep_early, run_dir_for

        keep_early(run_dir_for(db))
    idle = db.is_file() and not held
    ended = asyncio.run(ended_before(db, config, [sp.id for sp in specs])) if idle else None
    if ended is not None:
        note, results = ended
        print(f"opsdeck: {note}", file=sys.stderr)
        for wid, status in sorted(results.items()):
            print(f"# {wid}: {status}", file=sys.stderr)
        return 0 if all(st == "completed" for st in results.values()) else 1
    if args.headless:
        return asyncio.run(
            headless(
                db,
                config,
                wfile,
                specs,
                quiet=args.quiet,
                incidents=args.incidents == "auto",
                listen=args.listen,
                runtime=args.runtime,
                address=args.address,
                as_json=args.json,
            )
        )
    from ..console import run_console

    end_start_hold()  # the console runs for long, unfrozen

    async def open_host() -> Any:
        from core.host.host import Host

        return await Host.open_local(db, wfile, specs, config, runtime=args.runtime, address=args.address)

    return run_console(db=db, config=config, speed=1.0, host_factory=open_host, listen=args.listen)


async def ended_before(db: Path, config: Config, ids: list[str]) -> tuple[str, dict[str, str]] | None:
    """When every workflow of the database (the file's among them) already ended: the note
    saying nothing will run, and each workflow's outcome. Read before any host or agent
    starts; None when there is work to run."""
    from core.engine import Engine
    from tui.dialogs import finished_note

    try:
        engine = await Engine.open(db, config=config, readonly=True)
    except Exception:  # noqa: BLE001 - a database that cannot be read is reported by the run itself
        return None
    try:
        s = engine.state
        note = finished_note(s) if all(s.knows(w) for w in ids) else None
        if note is None:
            return None
        return note, {w.id: w.status.value for w in s.all_workflows()}
    finally:
        await engine.close()


def finished(engine: Any) -> bool:
    """Every workflow ended, or waits on one that can no longer complete."""
    from core.models import TERMINAL_WORKFLOW, WorkflowStatus

    for w in engine.state.workflows.values():  # finished ones have left the hot state
        if w.status in TERMINAL_WORKFLOW:
            continue
        if w.status is WorkflowStatus.PENDING and _blocked(engine, w.id, set()):
            continue
        return False
    return True


def _blocked(engine: Any, wf_id: str, seen: set[str]) -> bool:
    from core.models import WorkflowStatus

    if wf_id in seen:
        return False
    seen.add(wf_id)
    w = engine.state.any_workflow(wf_id)
    for d in w.depends_on:
        dw = engine.state.any_workflow(d)
        if dw is None:
            continue
        if dw.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED):
            return True
        if dw.status is WorkflowStatus.PENDING and _blocked(engine, d, seen):
            return True
    return False


async def headless(
    db: Path,
    config: Config,
    wfile: Any,
    specs: Any,
    quiet: bool = False,
    incidents: bool = False,
    listen: str | None = None,
    runtime: str = "local",
    address: str | None = None,
    as_json: bool = False,
) -> int:
    """A host on real agents until every workflow has ended (or SIGINT/SIGTERM)."""
    import asyncio

    from core.collector import freeze_loaded
    from core.event_types import WORKFLOW_CANCELLED, WORKFLOW_COMPLETED, WORKFLOW_FAILED
    from core.host.host import TICK_S, Host
    from core.models import WorkflowStatus
    from core.workflow_file import WorkflowFileError

    from ..output import LinePrinter, json_line
    from .hosting import announce, say_proving, stop_on_signals

    printer = LinePrinter(as_json)
    ends = (WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED)
    ended: list[str] = []
    """Workflows that ended in this run: its agents run as soon as they connect (while the
    endpoint opens too), so a short run can be over before the pacing starts, which is
    not a run whose workflows had all ended before it."""

    def seen(ev: Event) -> None:
        if ev.type in ends:
            ended.append(ev.type)
        if not quiet:
            printer(ev)

    stop = stop_on_signals()  # before any agent starts: a stop always cleans up
    say_proving("run")
    freeze_loaded()  # the modules, the config and the file: no collection walks them again
    try:
        host = await Host.open_local(
            db,
            wfile,
            specs,
            config,
            subscriber=seen,
            approve_mode="auto" if incidents else "manual",
            runtime=runtime,
            address=address,
            incidents=incidents,
        )
    except ConnectionError as exc:  # Ray did not come up, or went away while joining
        print(f"opsdeck: cannot reach the Ray cluster: {exc}; nothing was started", file=sys.stderr)
        return 2
    except WorkflowFileError as exc:  # what the file asks does not fit the cluster
        print_problems(exc)
        return 2
    engine, rt = host.engine, host.runtime
    assert rt is not None, "a host on real agents has a runtime"
    pace = asyncio.Event()
    """Ends the pacing: a stop signal, or the commit of the last workflow's end (the
    pacing loop itself looks at ``finished`` once a tick, up to 0.1 s later)."""
    relay = asyncio.get_running_loop().create_task(_set_when(stop, pace))
    unsubscribe = engine.subscribe(lambda ev: pace.set() if ev.type in ends and finished(engine) else None)
    try:
        await host.serve(listen)
        announce(host, "run")
        print(
            f"# opsdeck run {db}: {rt.limits_line()}; agents adopted={rt.adopted} recovered={rt.recovered}",
            file=sys.stderr,
        )
        async with host.lock:  # an end folded but not yet committed reaches ``seen`` (``ended``) here
            await engine.flush()
        if finished(engine) and not ended:
            print(
                f"# every workflow of this file already ended in {db}; nothing to run (use another --db to run it again)",
                file=sys.stderr,
            )
        elif finished(engine):  # ended before the pacing started: the beat it gives an end (maintenance)
            async with host.lock:
                await host.beat(TICK_S)
        await host.run(pace, until=lambda: finished(engine))
        async with host.lock:
            for w in sorted(engine.state.workflows.values(), key=lambda w: w.id):
                if w.status is WorkflowStatus.PENDING and _blocked(engine, w.id, set()):
                    engine.cancel_workflow(w.id, actor="opsdeck run")
            await engine.flush()
    finally:
        relay.cancel()
        unsubscribe()
        await host.close()
    results = {w.id: w.status.value for w in engine.state.all_workflows()}
    for wid, status in sorted(results.items()):
        print(f"# {wid}: {status}", file=sys.stderr)
    if rt.left_running:
        print(f"opsdeck: could not end agent hosts this run started: {', '.join(rt.left_running)}", file=sys.stderr)
    summary = run_summary(db, results, stop.is_set(), rt.left_running)
    if as_json:
        printer.write(json_line(summary))
    if stop.is_set():
        return 130
    return 0 if summary["ok"] else 1


def run_summary(db: Path, results: dict[str, str], interrupted: bool, left_running: list[str]) -> dict[str, Any]:
    """The run's last JSON line, which says what its exit code says: ok only when every
    workflow completed and no agent host this run started is left running."""
    return {
        "summary": "run",
        "db": str(db),
        "workflows": dict(sorted(results.items())),
        "ok": all(s == "completed" for s in results.values()) and not left_running,
        "hosts_left_running": list(left_running),
        "interrupted": interrupted,
    }


async def _set_when(event: asyncio.Event, then: asyncio.Event) -> None:
    await event.wait()
    then.set()

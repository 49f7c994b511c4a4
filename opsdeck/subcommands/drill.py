"""``opsdeck drill NAME``: inject a failure scenario into the simulated demo fleet and
watch it be detected, planned, approved, executed and validated.

Exit 0 only if the recovery validated and the final invariants hold (no task lost,
none completed twice, dependencies respected, the chain verifies). With
``--approve manual`` the drill waits for decisions read from stdin as commands
(``/incident approve PLAN-0001``), the way a script or the console gives them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..output import LinePrinter

if TYPE_CHECKING:
    from core.incident_models import Plan

# The engine, the incident kinds and the event catalogue load in the verb's run (a parser
# built for `opsdeck --help` loads none of them).

DRILL_FLEET = Path(__file__).resolve().parents[2] / "examples" / "drill_fleet.toml"
"""The live drills' fleet when no --file is given."""


@functools.cache
def scenarios() -> tuple[str, ...]:
    """The incident kinds' names (``core.incidents.kinds.SCENARIOS``)."""
    from core.incidents.kinds import SCENARIOS

    return SCENARIOS


class _Scenarios(Sequence[str]):
    """:func:`scenarios` read when the parser first uses them (to check NAME, or to print
    drill's own help): the parser built for ``opsdeck --help`` loads no incident kinds
    (about 0.5 s of CPU)."""

    def __getitem__(self, i: Any) -> Any:
        return scenarios()[i]

    def __len__(self) -> int:
        return len(scenarios())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drill",
        help="run a failure drill on the simulated demo fleet",
        description="Inject one of the five failure scenarios into the simulated demo fleet, run headless, print the "
        "event lines, and exit 0 only if the recovery validated. Ends with the detection latency and recovery time "
        "in simulated time.",
    )
    p.add_argument("name", choices=_Scenarios(), metavar="NAME", help="one of: %(choices)s")
    p.add_argument("--db", metavar="PATH", help="database file (default: a fresh temporary one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    p.add_argument(
        "--approve",
        choices=("auto", "manual"),
        default="auto",
        help="auto (default): the drill approves every plan; manual: the approval policy applies (analysis, "
        "checkpoint and monitoring steps run, destructive ones wait) and decisions are read as commands "
        "from stdin, e.g. '/incident approve PLAN-0001'",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds before giving up (simulated: default 14400; local: wall-clock, default 180)",
    )
    p.add_argument(
        "--runtime",
        choices=("sim", "local"),
        default="sim",
        help="sim (default): the simulated demo fleet; local: real agent processes (examples/drill_fleet.toml), "
        "the fault injected for real (agent-cascade: SIGKILL of agent hosts; network-partition: SIGSTOP, SIGCONT "
        "after 10 s; data-integrity: a checkpoint damaged through SQLite); times are wall-clock",
    )
    p.add_argument(
        "--file",
        metavar="TOML",
        help="with --runtime local: the workflow file of the fleet (default examples/drill_fleet.toml)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the incident pipeline's events and the summary")
    p.add_argument(
        "--json", action="store_true", help="print only the final report, as one JSON object (no event lines)"
    )
    p.set_defaults(func=run)


@functools.cache
def pipeline() -> frozenset[str]:
    """The incident pipeline's event types (what ``--quiet`` prints), read when a drill runs."""
    from core import event_types as et

    return frozenset(
        {
            et.INCIDENT_OPENED,
            et.INCIDENT_RESOLVED,
            et.PLAN_PROPOSED,
            et.PLAN_APPROVED,
            et.PLAN_REJECTED,
            et.PLAN_EDITED,
            et.PLAN_EXECUTION_STARTED,
            et.PLAN_STEP_STARTED,
            et.PLAN_STEP_COMPLETED,
            et.PLAN_STEP_FAILED,
            et.PLAN_ABORTED,
            et.PLAN_COMPLETED,
            et.LEARNING_RECORDED,
            et.DRILL_FAULT_INJECTED,
            et.DRILL_FAULT_CONFIRMED,
            et.COMMAND_EXECUTED,
            et.RESOURCE_EXHAUSTION,
            et.EMERGENCY_RESPONSE_ACTIVATED,
            et.EMERGENCY_RESPONSE_COMPLETED,
            et.AGENT_POOL_FAILURE,
            et.RECOVERY_PLAN_GENERATED,
            et.RECOVERY_VALIDATION_COMPLETED,
            et.PERFORMANCE_DEGRADATION_DETECTED,
            et.OPTIMIZATION_STRATEGY_GENERATED,
            et.OPTIMIZATION_COMPLETED,
            et.DATA_INTEGRITY_ALERT,
            et.DATA_RECOVERY_STRATEGY,
            et.DATA_RECOVERY_COMPLETED,
            et.COMMUNICATION_FAILURE,
            et.RESILIENT_COORDINATION_ACTIVATED,
            et.NETWORK_RECOVERY_COMPLETED,
        }
    )


def run(args: argparse.Namespace) -> int:
    from core.config import load_config
    from core.incidents.drills import DrillError

    config = load_config(args.config)
    go = _drill_local if args.runtime == "local" else _drill
    try:
        if args.db:
            return asyncio.run(go(Path(args.db), config, args))
        with tempfile.TemporaryDirectory(prefix="opsdeck-drill-") as d:
            return asyncio.run(go(Path(d) / "drill.db", config, args))
    except DrillError as exc:
        print(f"opsdeck: drill {args.name}: {exc}", file=sys.stderr)
        return 2


async def _decisions(drill: Any, printer: LinePrinter) -> None:
    """Manual approval: run each stdin line as a command while a plan waits."""
    from core.commands import run_command
    from core.host.language import services

    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        raise EOFError("stdin closed while a plan waits for a decision")
    text = line.strip()
    if not text or text.startswith("#"):
        return
    res = await run_command(services(drill.engine, incidents=drill.manager), text, actor="operator:stdin")
    if res["status"] != "success":
        print(f"# {text}: {res['error']['code']}: {res['error']['message']}", file=sys.stderr)


async def _drill(db: Path, config: Any, args: argparse.Namespace) -> int:
    from core.host.lease import acquire, host_info
    from core.host.paths import check_database

    check_database(db, create=True)  # a new database, but never a new directory
    lease = acquire(db, host_info(db, "drill", host=False))  # one writer: a live host's database is refused
    try:
        return await _drill_leased(db, config, args)
    finally:
        lease.release()


async def _drill_leased(db: Path, config: Any, args: argparse.Namespace) -> int:
    from core.incidents.drills import start_drill
    from core.session import open_sim

    engine = await open_sim(db, config, seed=args.seed, demo=True)
    printer = LinePrinter()
    shown = pipeline()

    def show(ev: Any) -> None:
        if args.json:
            return  # the report is the one thing on stdout
        if not args.quiet or ev.type in shown:
            printer(ev)

    engine.subscribe(show)
    try:
        drill = start_drill(engine, args.name, approve=args.approve)
        end = engine.clock.now() + (args.budget or 4 * 3600.0)
        while not drill.done and engine.clock.now() < end:
            await drill.step()
            plan = drill.plan()
            if args.approve == "manual" and plan is not None and plan.state == "proposed" and _waiting(plan):
                try:
                    await _decisions(drill, printer)
                except EOFError as exc:
                    print(f"opsdeck: drill {args.name}: {exc}", file=sys.stderr)
                    break
        report = await drill.report()
    finally:
        await engine.close()
    return _print_report(report, args, "simulated")


LOCAL_SUPERVISION_WINDOW_S = 20.0


async def _drill_local(db: Path, config: Any, args: argparse.Namespace) -> int:
    """The same detectors, plans and validations on real agent processes; the fault
    injected for real; latency and recovery time in wall-clock seconds."""
    from core.incidents.drills import LIVE_DRILLS, DrillError, start_drill
    from core.runtimes.local import open_local
    from core.workflow_file import WorkflowFileError, load_workflow_file

    if args.name not in LIVE_DRILLS:
        raise DrillError(
            f"the {args.name} drill runs on the simulated runtime only; on real processes: {', '.join(LIVE_DRILLS)}"
        )
    if args.approve == "manual":
        raise DrillError("--approve manual needs the simulated runtime (decisions are read between clock steps)")
    path = Path(args.file) if args.file else DRILL_FLEET
    try:
        wfile, specs = load_workflow_file(path)
    except WorkflowFileError as exc:
        raise DrillError(str(exc)) from None
    # Real time: the cascade's failures come within a short supervision window.
    config = config.model_copy(
        update={"supervision": config.supervision.model_copy(update={"window_s": LOCAL_SUPERVISION_WINDOW_S})}
    )
    printer = LinePrinter()
    shown = pipeline()

    def show(ev: Any) -> None:
        if not args.json and (not args.quiet or ev.type in shown):
            printer(ev)

    engine, runtime = await open_local(db, wfile, specs, config, subscriber=show)
    try:
        drill = start_drill(engine, args.name, approve="auto")
        report = await drill.run_live(args.budget or 180.0)
    finally:
        await runtime.shutdown()
        await engine.close()
    return _print_report(report, args, "wall-clock")


def _print_report(report: dict[str, Any], args: argparse.Namespace, clock: str) -> int:
    sys.stdout.flush()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        inv = report["invariants"]
        print(
            f"# drill {report['drill']}: {'VALIDATED' if report['validated'] else 'NOT VALIDATED'}"
            f" ({report['status']}, plan {report['plan']} {report['plan_state']})"
        )
        checks = {k: v for k, v in (report.get("fault_checks") or {}).items() if k != "confirmed"}
        print(f"# fault confirmed independently: {'yes' if report.get('fault_confirmed') else 'NO'} {checks}")
        print(f"# detection latency: {_s(report['detection_latency_s'])} {clock}")
        print(f"# recovery time (first acting step -> criterion met): {_s(report['recovery_time_s'])} {clock}")
        if report.get("plan_finished_s") is not None:
            print(f"# plan finished (all steps and validations): {_s(report['plan_finished_s'])} after detection")
        print(
            f"# invariants: {'ok' if inv['ok'] else 'VIOLATED'} (lost {len(inv['lost_tasks'])}, completed twice "
            f"{len(inv['completed_twice'])}, dependency violations {len(inv['dependency_violations'])}, chain "
            f"{'ok' if inv['chain'].get('ok', True) else 'BROKEN'})"
        )
        for i in report.get("unresolved_incidents") or []:
            print(f"# unresolved: {i['id']} {i['scenario']} {i['status']}")
        if report.get("reason"):
            print(f"# reason: {report['reason']}")
    return 0 if report["validated"] else 1


def _waiting(plan: Plan) -> bool:
    from core.incident_models import STEP_PASSED

    for st in plan.steps:
        if st.state in STEP_PASSED:
            continue
        return st.state == "proposed" and st.approval == "manual"
    return False


def _s(v: Any) -> str:
    return "n/a" if v is None else f"{float(v):.1f}s ({float(v) / 60:.1f} min)"

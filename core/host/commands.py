"""``/host``: commands that control the host itself, on the one command path.

They live in the command registry like every other operation (help, the palette,
completion, scripts, clients), but the host registers them: ``core.commands`` never
imports ``core.host``. A handler finds the host running its engine through
:func:`host_of`; in a process that opened the database in-process there is none,
and the command says so instead of pretending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from ..commands.context import Context
from ..commands.payloads import Duration, Payload
from ..commands.registry import Operations, Outcome
from ..commands.responses import CommandError
from ..incidents.drills import DrillError
from ..incidents.kinds import SCENARIOS
from ..timefmt import clock as clock_text
from ..timefmt import duration as duration_text
from .control import HostServices
from .errors import HostError

if TYPE_CHECKING:
    from .control import HostControl

C = "host"
OPS = Operations(C, "the process that runs this database: status, the simulated clock, drills")
operation = OPS.operation


def host_of(ctx: Context) -> HostControl:
    services = ctx.services
    host = services.host if isinstance(services, HostServices) else None
    if host is None:
        raise CommandError(
            "NO_HOST",
            f"{ctx.spec.name} needs a running host; this process opened the database in-process",
            {},
            ["opsdeck serve --demo --db DB", "opsdeck run FILE.toml --headless --db DB"],
        )
    return host


class ClockRequest(Payload):
    action: Literal["pause", "run", "status"] = Field("status", description="pause or run the simulated clock")


class DrillRequest(Payload):
    name: Literal[(*SCENARIOS, "cancel")] = Field(  # type: ignore[valid-type]
        description="the scenario: " + ", ".join(SCENARIOS) + "; or cancel (stop the running drill)"
    )


class AdvanceRequest(Payload):
    duration: Annotated[Duration, Field(gt=0)] | Literal["cancel"] = Field(
        description="simulated time to run forward: 30s, 5m, 1h; or cancel (stops a running advance)"
    )


def _clock(host: HostControl) -> dict[str, Any]:
    return {
        "simulated": host.virtual,
        "clock": round(host.engine.clock.now(), 3),
        "speed": host.speed,
        "clock_running": host.clock_running,
    }


@operation(
    C,
    "status",
    kind="analysis",
    payload=Payload,
    summary="the host: pid, runtime, database, sequence number, clock, speed, uptime, drill",
)
async def status(ctx: Context, p: Payload) -> Outcome:
    st = host_of(ctx).status()
    clock = "paused" if not st["clock_running"] else f"x{st['speed']:g}"
    unrecorded = st["storage"]["checkpoints"]
    return Outcome(
        st,
        f"host pid {st['pid']} ({st['runtime']}) on {st['db']}: seq {st['seq']}, "
        f"clock {clock_text(float(st['clock']))} {clock if st['simulated'] else '(wall clock)'}, up {duration_text(float(st['uptime']))}"
        + (f"; {unrecorded}" if unrecorded else ""),
    )


@operation(
    C,
    "clock",
    kind="lifecycle",
    payload=ClockRequest,
    word_args=("action",),
    flags={"speed": "simulated seconds per wall second (with run)"},
    summary="pause or run the host's simulated clock (run --speed=X changes its pace)",
)
async def clock(ctx: Context, p: ClockRequest) -> Outcome:
    host = host_of(ctx)
    speed = ctx.flags.get("speed")
    if p.action != "status" and not host.virtual:
        raise CommandError(
            "NOT_SIMULATED",
            f"this host runs real agents on the wall clock ({host.kind}); its clock cannot be paused or sped up",
            _clock(host),
            ["/workflow-status pause <workflow-id>"],
        )
    if speed is not None and p.action != "run":
        raise CommandError("INVALID_FLAG", "--speed goes with /host clock run", {}, ["/host clock run --speed=60"])
    if p.action == "pause":
        host.pause_clock()
    elif p.action == "run":
        value: float | None = None
        if speed is not None:
            try:
                value = float(speed)
            except (TypeError, ValueError):
                raise CommandError(
                    "INVALID_FLAG",
                    f"--speed={speed!r}: expected a number of simulated seconds per wall second",
                    {},
                    ["/host clock run --speed=30"],
                ) from None
            if not 0 < value <= 100_000:
                raise CommandError("INVALID_FLAG", f"--speed={value:g}: must be above 0 and at most 100000", {})
        host.run_clock(value)
    st = _clock(host)
    word = "running" if st["clock_running"] else "paused"
    return Outcome(st, f"the simulated clock is {word} at {clock_text(float(st['clock']))} (x{st['speed']:g})")


@operation(
    C,
    "advance",
    kind="lifecycle",
    payload=AdvanceRequest,
    word_args=("duration",),
    summary="run the host's simulated clock forward in steps (cancel stops it); refused on a real-time host",
)
async def advance(ctx: Context, p: AdvanceRequest) -> Outcome:
    """The clock runs forward one step of 30 simulated seconds at a time; other
    commands (and ``/host advance cancel``) run between steps, ``/host status`` shows
    how far it got, and the command is answered when the advance ends."""
    host = host_of(ctx)
    if not host.virtual:
        raise CommandError(
            "NOT_SIMULATED",
            f"this host runs real agents on the wall clock ({host.kind}): "
            "simulated time cannot be advanced; wait for real events instead",
            _clock(host),
        )
    now = host.engine.clock.now()
    if p.duration == "cancel":
        job = host.cancel_advance()
        if job is None:
            raise CommandError("NOT_ADVANCING", "no advance is running", _clock(host), ["/host status"])
        return Outcome(
            {**_clock(host), "advance": job.report(now)},
            f"advance to {clock_text(job.target)} cancelled at {clock_text(now)} (it stops after the step under way)",
            ["/host status"],
        )
    try:
        job = host.start_advance(p.duration)
    except HostError as exc:
        raise CommandError(
            "ADVANCE_RUNNING", str(exc), _clock(host), ["/host advance cancel", "/host status"]
        ) from None
    return Outcome(
        {**_clock(host), "advance": job.report(now)},
        f"advancing {duration_text(p.duration)} from {clock_text(now)} to {clock_text(job.target)} in steps; other commands run between them",
        ["/host status", "/host advance cancel"],
    )


@operation(
    C,
    "drill",
    kind="destructive",
    payload=DrillRequest,
    word_args=("name",),
    summary="arm a failure drill on the host's fleet (its plan waits for approval); drill cancel stops the running one",
)
async def drill(ctx: Context, p: DrillRequest) -> Outcome:
    """The fault is injected after the warm-up (15 simulated minutes); the host's
    pacing loop steps the drill and its incident pipeline. Approve the plan with
    ``/incident approve PLAN-....``. ``/host drill cancel`` stops the running drill."""
    host = host_of(ctx)
    if p.name == "cancel":
        return _cancel_drill(ctx, host)
    try:
        d = host.start_drill(p.name)
    except (DrillError, HostError) as exc:
        raise CommandError("DRILL_REFUSED", str(exc), {"drill": p.name}) from None
    return Outcome(
        {"drill": d.name, "inject_at": d.inject_at, "now": round(ctx.now, 3)},
        f"drill {d.name} armed: the fault is injected at {clock_text(d.inject_at)}; its plan will wait for approval",
        ["/incident list", "/host status", "/host drill cancel"],
    )


def _cancel_drill(ctx: Context, host: HostControl) -> Outcome:
    try:
        d = host.cancel_drill(ctx.actor)
    except HostError as exc:
        raise CommandError("NO_DRILL", str(exc), {}, ["/host status"]) from None
    if d.injected_at is None:
        what = "its fault was never injected"
    else:
        inc = d.incident()
        what = (
            f"its fault ({', '.join(sorted(d.fault)) or d.name}) was injected at {clock_text(d.injected_at)} "
            "and stays as the environment has it; fault steps still to come are dropped"
            + (f"; incident {inc.id} stays {inc.status}" if inc else "; no incident had opened")
        )
    return Outcome(
        {"drill": d.name, "cancelled": True, "injected_at": d.injected_at, "fault": d.fault},
        f"drill {d.name} cancelled: {what}",
        ["/incident list", "/host status"],
    )

"""``/coordination-hub`` events: publish an observed line, subscriptions, reading the log."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ...event_types import (
    CHECKPOINT_CREATED,
    COMMAND_EXECUTED,
    STATE_RESTORED,
)
from ...events import EventHeader
from .. import payloads as P
from ..context import Context
from ..registry import Operations, Outcome
from ..responses import CommandError
from . import C

OPS = Operations(C, None)
operation = OPS.operation


@operation(C, "publish-event", kind="lifecycle", payload=P.PublishEvent, summary="record an event line as observed")
async def publish_event(ctx: Context, p: P.PublishEvent) -> Outcome:
    try:
        header = EventHeader(type=p.type, component=p.component, scope=p.scope, data=p.data)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        raise CommandError("INVALID_EVENT", f"{e['loc'][0]}: {e['msg']}", {"field": str(e["loc"][0])}) from None
    if header.type in (STATE_RESTORED, COMMAND_EXECUTED, CHECKPOINT_CREATED) or header.type.startswith(
        ("TASK_", "AGENT_", "WORKFLOW_", "RESUMPTION_")
    ):
        raise CommandError(
            "RESERVED_EVENT", f"{header.type} is an engine event; it cannot be published by hand", {"type": header.type}
        )
    ev = ctx.engine.inject(header, actor=ctx.actor)
    return Outcome({"seq": ev.seq, "line": ev.line()}, f"published {ev.type} as seq {ev.seq}")


def subscribed_types(state: Any, name: str | None = None) -> set[str]:
    """The event types of subscription ``name`` (of every subscription without one).
    Read by the console (a notification per matching event), by ``GET /v1/events
    ?subscription=NAME`` and by ``get-events '{"subscription": NAME}'``."""
    subs = state.settings.get("subscriptions", {})
    if not isinstance(subs, dict):
        return set()
    if name is not None:
        return set(subs.get(name, []))
    return {t for types in subs.values() for t in types}


@operation(
    C,
    "subscribe-event",
    kind="monitoring",
    payload=P.SubscribeEvent,
    summary="a named subscription to event types: delivered as console notifications, to GET /v1/events?subscription=NAME and get-events",
)
async def subscribe_event(ctx: Context, p: P.SubscribeEvent) -> Outcome:
    subs = dict(ctx.state.settings.get("subscriptions", {}))
    subs[p.name] = sorted(set(p.types))
    ctx.engine.set_setting("subscriptions", subs, actor=ctx.actor)
    seen = {t: ctx.state.observed.get(t, 0) for t in p.types}
    return Outcome(
        {
            "subscriptions": subs,
            "observed_so_far": seen,
            "from_seq": ctx.state.seq,
            "delivered_to": [
                "console notifications",
                f"GET /v1/events?subscription={p.name}",
                f'/coordination-hub get-events \'{{"subscription": "{p.name}"}}\'',
            ],
        },
        f"subscription {p.name!r} to {', '.join(p.types)}: delivered from seq {ctx.state.seq}",
    )


@operation(
    C,
    "get-events",
    kind="analysis",
    payload=P.GetEvents,
    summary="the latest events from the log (types, since, limit, workflow)",
    workflow_arg="optional",
)
async def get_events(ctx: Context, p: P.GetEvents) -> Outcome:
    eng = ctx.engine
    if eng.store is None:
        raise CommandError("NO_STORE", "this engine has no stored log", {}, ["open a database with --db"])
    await eng.flush()
    wid = ctx.workflow_id or p.workflow
    if wid:
        ctx.workflow(wid)
    types = list(p.types)
    if p.subscription is not None:
        sub = subscribed_types(ctx.state, p.subscription)
        if not sub:
            raise CommandError(
                "SUBSCRIPTION_NOT_FOUND",
                f"no subscription {p.subscription!r}",
                {"known": sorted(ctx.state.settings.get("subscriptions", {}))},
                ["/coordination-hub subscribe-event"],
            )
        types = sorted(set(types) & sub if types else sub)
    since = p.since if (wid or types) else max(p.since, ctx.state.seq - p.limit)
    evs = await eng.store.read_events(since, None, types=types or None)
    if wid:
        evs = [e for e in evs if e.data.get("workflow_id") == wid or str(e.data.get("task", "")).startswith(wid + "/")][
            -p.limit :
        ]
    else:
        evs = evs[-p.limit :]
    rows = [{"seq": e.seq, "ts": e.ts, "actor": e.actor, "line": e.line()[:500]} for e in evs]
    return Outcome({"events": rows, "count": len(rows)}, f"{len(rows)} event(s)", workflow_id=wid)

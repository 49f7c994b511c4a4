"""The event counts and task timings ``GET /metrics`` reads, started with the endpoint.

Apart from :mod:`.metrics` (prometheus-client): a host whose endpoint is not loaded yet
(:mod:`.door`) starts counting when it starts listening, so its first scrape reads the
same figures as one of a host that loaded its endpoint at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..event_types import TASK_FAILED, TASK_TIMEOUT
from ..telemetry import COUNTED_TYPES, EventCounts, failure_reason

if TYPE_CHECKING:
    from ..engine import Engine


async def start_counting(engine: Engine) -> None:
    """Seed the event counts from the store and feed the task timings from now on.

    Under the store lock, so no commit falls between the count and the seed: the
    counts equal the log's from the first scrape on.
    """
    tel = engine.telemetry
    if tel.counts is not None:
        return
    store = engine.store
    await engine.flush()
    if store is None:
        tel.counts = EventCounts({}, {}, engine.state.seq)
    else:
        async with engine.store_lock:
            head, _ = await store.head()
            by_type = await store.count_types(COUNTED_TYPES, head)
            failures: dict[str, int] = {}
            for type_, error in await store.type_field((TASK_FAILED, TASK_TIMEOUT), "error", head):
                reason = failure_reason(type_, str(error or ""))
                failures[reason] = failures.get(reason, 0) + 1
            tel.counts = EventCounts(by_type, failures, head)
    tel.tasks.start(engine.state, engine.clock.now())
    engine.observe(lambda ev: tel.tasks.observe(engine.state, ev))

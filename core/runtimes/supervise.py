"""The end of an agent's host in a real runtime: retired, died (and replaced), or shut down.

Shared by the local and the Ray runtimes: how a host ends differs (a process, an
actor: their :class:`~.fleet.Links`), what it means to the engine does not. An agent
that dies fails (its task goes back to the queue with its context unless the task's
retry policy is spent) and its pool is replenished; a retired one is reaped after the
grace period; a shutdown leaves no host and no task process behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic

from ..models import LIVE_AGENT
from .dispatch import Dispatch
from .fleet import Fleet, H, Links

if TYPE_CHECKING:
    from ..engine import Engine

KILL_WAIT_S = 5.0
"""How long a killed host may take to be seen gone before the shutdown says it could not end it."""


ENDING_PRUNE_AT = 32
"""Killed hosts kept before those seen ended are dropped (then twice the ones left, plus this)."""


class Supervisor(Generic[H]):
    """What happens to the engine's agents when their hosts end."""

    def __init__(self, fleet: Fleet[H], links: Links[H], dispatch: Dispatch[H]) -> None:
        self.fleet = fleet
        self.links = links
        self.dispatch = dispatch
        self.ending: list[H] = []
        """Hosts killed whose end is not yet seen: the shutdown waits for them too."""
        self._prune_at = ENDING_PRUNE_AT

    def fail_unadopted(self, engine: Engine, adoptable: Iterable[str], gone_reason: str, why: dict[str, str]) -> None:
        """On opening: the agents the log counts as live whose hosts were not found (or
        not trusted, ``why``) fail; their tasks go back to be run again (``agent_failed``)."""
        keep = set(adoptable)
        for a in sorted(engine.state.agents.values(), key=lambda a: a.id):
            if a.status in LIVE_AGENT and a.id not in keep:
                self.fleet.recovered.append(a.id)
                reason = why.get(a.id)
                engine.agent_failed(a.id, gone_reason if reason is None else f"not adopted: {reason}")

    def gone(self, h: H) -> None:
        """A host that is no more: drop its connection and its row."""
        h.dead = True
        self.links.close(h)
        self.fleet.forget_row(h.agent)

    def end(self, h: H) -> None:
        """Kill the host (verified by create time) and keep it until its end is seen. The
        hosts already ended are dropped from :attr:`ending` once it doubles, not at each
        kill (which would read n*n/2 liveness for a shutdown killing n hosts still starting)."""
        self.links.kill(h)
        self.ending.append(h)
        if len(self.ending) > self._prune_at:
            self.ending = [e for e in self.ending if self.links.alive(e)]
            self._prune_at = 2 * len(self.ending) + ENDING_PRUNE_AT

    def died(self, h: H, reason: str) -> None:
        """An agent host taken for dead: fail the agent (its task goes back with its
        context), replace it. One whose process still runs (stuck, or refused on its
        socket) is killed first, so no replaced host is left running."""
        if h.dead:
            return
        fleet = self.fleet
        if self.links.alive(h):
            self.end(h)
            reason = f"{reason}; a kill was sent to its still running process"
        else:
            self.links.kill_task_group(h)
        self.gone(h)
        sink = fleet.sink
        if fleet.closing or sink is None or h.retiring:
            return
        engine = fleet.engine
        a = engine.state.agents.get(h.agent) if engine is not None else None
        if engine is not None and a is not None and a.current_task:
            t = engine.state.tasks[a.current_task]
            allowed = self.dispatch.attempts_allowed(t.id) or engine.config.retries.attempts
            if t.attempts >= allowed:  # the retry policy is spent: the task fails with its agent
                sink.task_failed(h.agent, t.id, f"its agent died: {reason}")
        sink.agent_failed(h.agent, reason)
        if engine is not None and a is not None:
            fleet.replenish(a.pool)

    def replace(self, old: H | None) -> None:
        """A new host takes an agent's place: the old one, if still there, is ended."""
        if old is not None and not old.dead:
            self.end(old)

    def retire_agent(self, agent_id: str) -> None:
        h = self.fleet.hosts.get(agent_id)
        if h is None or h.dead:
            return
        h.retiring = True
        self.fleet.send(h, {"op": "shutdown"})
        asyncio.get_running_loop().call_later(self.fleet.timing.stop_grace_s + 3.0, self._reap_retired, h)

    def _reap_retired(self, h: H) -> None:
        if not h.dead and not self.links.alive(h):
            self.gone(h)
        elif not h.dead:
            self.end(h)
            self.gone(h)

    async def shutdown(self, release: bool = True) -> None:
        """Stop every agent and task; leave no host behind. With ``release`` the log
        records it: running tasks go back to the queue, agents are deallocated."""
        fleet, links = self.fleet, self.links
        engine = fleet.engine
        if release and engine is not None and not engine.readonly:
            for a in sorted(engine.state.agents.values(), key=lambda a: a.id):
                if a.status in LIVE_AGENT:
                    engine.retire_agent(a.id, actor="opsdeck")
        fleet.closing = True
        live = [h for h in fleet.hosts.values() if not h.dead]
        for h in live:
            h.retiring = True
            if h.started and not h.reached:
                # Started here and sent nothing yet: it runs nothing, and asking it to exit
                # would wait for its start and its connection first (a short run ends while
                # hosts are still starting). Ended now instead; its end is waited for below.
                self.end(h)
            else:
                fleet.send(h, {"op": "shutdown"})
        fleet.poke()
        await asyncio.gather(*(links.ended(h, fleet.timing.stop_grace_s + 2.0) for h in live))
        # Every host this console started, dead-marked ones included: none is left running.
        hosts = list({id(h): h for h in [*fleet.hosts.values(), *self.ending]}.values())
        killed = {id(e) for e in self.ending}  # waited for below as they are: not read here
        for h in hosts:
            if id(h) not in killed and links.alive(h):
                self.end(h)
            if not h.dead:
                self.gone(h)
        ends = await asyncio.gather(*(links.ended(h, KILL_WAIT_S) for h in self.ending))
        for h, done in zip(self.ending, ends, strict=True):
            if not done:
                fleet.left_running.append(f"{h.agent} (pid {h.pid or 'unknown'})")
        self.ending = []
        for h in hosts:
            links.release(h)
        await fleet.run_store_ops()
        await fleet.stop_loops()
        for h in fleet.hosts.values():
            if h.conn is not None:
                h.conn.cancel()
        if engine is not None:
            await engine.flush()

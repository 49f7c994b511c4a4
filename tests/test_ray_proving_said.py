"""A restarted console on the Ray runtime says it is finding the last run's actors, and
how many it found, with the local runtime's notice (:mod:`core.runtimes.opening`). Ray
itself is a stand-in here (the calls reconcile makes of it); the slow test on a real
instance is test_ray_runtime's restart after a SIGKILLed host."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from core.models import Agent, AgentStatus
from core.runtimes import ray_actors
from core.runtimes.opening import PROVING, Proving
from core.runtimes.ray_actors import RayActors


class _Cluster:
    """The part of ``ray`` reconcile uses: named actors of one namespace, ``ray.kill``."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.killed: list[str] = []
        self.util = SimpleNamespace(list_named_actors=self.list_named_actors)

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 2.0}

    def list_named_actors(self, all_namespaces: bool) -> list[dict[str, str]]:
        return [{"name": n, "namespace": "ns"} for n in self.names]

    def get_actor(self, name: str, namespace: str) -> str:
        return f"handle:{name}"

    def kill(self, handle: str, no_restart: bool) -> None:
        self.killed.append(handle)


def _reconcile(monkeypatch: pytest.MonkeyPatch, actors: list[str], live: list[str]) -> tuple[RayActors, list[str]]:
    """Reconcile ``actors`` (in the cluster) against ``live`` agents (in the log): what was told."""
    monkeypatch.setattr(ray_actors, "ray", _Cluster(actors))
    found = RayActors(None, None, None, None, "ns", None)  # type: ignore[arg-type]
    agents = {a: Agent(id=a, pool="p", specializations=[], status=AgentStatus.BUSY) for a in live}
    engine: Any = SimpleNamespace(state=SimpleNamespace(agents=agents))
    told: list[str] = []

    async def run() -> None:
        PROVING.set(lambda p: told.append(p.words()))
        await found.reconcile(engine)

    asyncio.run(run())
    return found, told


def test_finding_the_actors_is_said_when_it_starts_and_with_the_count_when_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, told = _reconcile(monkeypatch, ["agent_001", "agent_003"], ["agent_001", "agent_002"])
    assert told[0] == "finding 2 Ray actors of the last run…", told
    assert told[1].startswith("found 1 of 2 Ray actors of the last run in "), told
    assert told[1].endswith("; 1 not found (their agents are failed; their tasks go back to be run again)"), told
    assert len(told) == 2 and list(found.adoptable) == ["agent_001"]
    assert ray_actors.ray.killed == ["handle:agent_003"], "the actor the log no longer counts as live"


def test_no_live_agent_of_the_last_run_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The must-not: nothing to find, nothing said (a leftover actor is still ended)."""
    found, told = _reconcile(monkeypatch, ["agent_003"], [])
    assert told == [] and not found.adoptable
    assert ray_actors.ray.killed == ["handle:agent_003"]


def test_both_runtimes_say_it_through_one_notice() -> None:
    local, ray = Proving(1), Proving(3, ray_actors.RAY_ACTORS)
    assert local.words() == "proving 1 agent host of the last run…" and local.title == "agent hosts"
    ray.ended(3)
    assert ray.words().startswith("found 3 of 3 Ray actors of the last run in ") and "not found" not in ray.words()
    assert ray.title == "Ray actors"

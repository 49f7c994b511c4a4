"""Shared fixtures: where the seed document is, fresh databases, engines."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psutil
import pytest

if TYPE_CHECKING:
    from core.incident_models import Plan
    from core.incidents.drills import Drill

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent


SEED_NAME = "error-handling-examples.md"
BESIDE = REPO.parent / "shared" / "seed" / SEED_NAME
"""Where the seed document is when shared/ sits beside the repository (CI and sessions alike)."""


def seed_document() -> Path:
    """The source document: ``$OPSDECK_SEED`` if set, else ``../shared/seed/`` beside the
    repository. A test that needs it and cannot find it is skipped, saying where it looked."""
    env = os.environ.get("OPSDECK_SEED")
    if env:
        if not Path(env).is_file():
            pytest.skip(f"OPSDECK_SEED={env} is not a file: the seed document's tests need it")
        return Path(env)
    if not BESIDE.is_file():
        pytest.skip(f"the seed document is not at {BESIDE} and OPSDECK_SEED is not set")
    return BESIDE


@pytest.fixture
def seed_text() -> str:
    return seed_document().read_text(encoding="utf-8")


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A process of ours standing in for an agent host or an actor's worker (killed after)."""
    p = subprocess.Popen(["sleep", "60"])
    try:
        yield psutil.Process(p.pid)
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "opsdeck.db"


def run_python(code: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c code argv...`` in a fresh interpreter at the repository root, output captured:
    for probes of what a start imports (``sys.modules`` after it), which the test process cannot see."""
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def opsdeck_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsdeck", *args]


def _said(what: str | Callable[[], object]) -> object:
    return what() if callable(what) else what


def wait_for(
    cond: Callable[[], T],
    what: str | Callable[[], object],
    timeout: float = 60.0,
    poll: float = 0.05,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Call ``cond`` until it returns something truthy and return that. Tests wait on a
    state, never a fixed time: on a loaded machine a time that sufficed once does not
    again. Past ``timeout`` seconds the test fails naming ``what`` (called then if a
    callable, to show the state it was waiting on). ``sleep(poll)`` between two calls:
    another pause where something must run meanwhile (a browser page's own wait)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {_said(what)}")
        sleep(poll)


async def until(
    cond: Callable[[], T],
    what: str | Callable[[], object],
    timeout: float = 60.0,
    poll: float = 0.02,
    step: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """:func:`wait_for` in a coroutine: the event loop runs for ``poll`` seconds between
    two calls of ``cond``; with ``step`` (what drives the awaited state: a flush, a
    pump), each call of ``cond`` follows one ``await step()``."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            await step()
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g}s: {_said(what)}")
        await asyncio.sleep(poll)


async def drill_until(drill: Drill, cond: Callable[[], Any], what: str | Callable[[], object], limit_s: float) -> None:
    """Step a drill on its simulated clock until ``cond()``; failing past ``limit_s``
    simulated seconds (the bound is in the drill's time: each step advances it)."""
    end = drill.engine.clock.now() + limit_s
    while not cond():
        assert drill.engine.clock.now() < end, f"not within {limit_s:g} simulated s: {_said(what)}"
        await drill.step()


def waits_for_operator(plan: Plan | None) -> bool:
    """Whether ``plan`` is proposed and stops at a step for the operator: its first step
    not completed is a manual one not started."""
    if plan is None or plan.state != "proposed":
        return False
    nxt = next((st for st in plan.steps if st.state != "completed"), None)
    return nxt is not None and nxt.state == "proposed" and nxt.approval == "manual"


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPSDECK_HOME"] = str(tmp_path / "home")
    env.pop("NO_COLOR", None)
    return env


@pytest.fixture
def env(cli_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``cli_env`` with its OPSDECK_HOME made, for hosts started as processes."""
    (tmp_path / "home").mkdir(exist_ok=True)
    return cli_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest modules run first, so that the two xdist workers finish together: the
    modules whose tests share one worker (``xdist_group``: the Ray instance, the built
    databases) and then those with the most slow tests; a module's tests keep their order
    (its module fixtures are built once). Under xdist the long units otherwise came late
    in alphabetical order, leaving the other worker idle at the end."""

    def weight(item: pytest.Item) -> tuple[int, int]:
        module = item.module if isinstance(item, pytest.Function) else None
        tests = by_module.get(module, [])
        grouped = any(t.get_closest_marker("xdist_group") is not None for t in tests)
        return (-int(grouped), -sum(t.get_closest_marker("slow") is not None for t in tests))

    by_module: dict[object, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.module if isinstance(item, pytest.Function) else None, []).append(item)
    items.sort(key=weight)


@pytest.fixture(scope="session", autouse=True)
def _no_agent_host_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Agent hosts run in sessions of their own (they outlive a killed console, to be
    adopted): one left by a test that failed midway would run on for an hour, so at
    the end whatever still runs under this session's temporary directory is killed."""
    yield
    from .local_harness import kill_agent_hosts_under

    left = kill_agent_hosts_under(tmp_path_factory.getbasetemp())
    if left:
        print(f"\nkilled agent host(s) left by tests: {left}", file=sys.stderr)

"""Shared fixtures: where the seed document is, fresh databases, engines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPSDECK_HOME"] = str(tmp_path / "home")
    env.pop("NO_COLOR", None)
    return env


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

"""Shared fixtures: where the seed document is, fresh databases, engines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def seed_document() -> Path:
    """The source document: shared/ sits beside the repository (CI and sessions alike)."""
    env = os.environ.get("OPSDECK_SEED")
    candidates = [Path(env)] if env else []
    candidates += [
        REPO.parent / "shared" / "seed" / "error-handling-examples.md",
        Path("/work/shared/seed/error-handling-examples.md"),
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("the seed document error-handling-examples.md was not found beside the repository")


@pytest.fixture
def seed_text() -> str:
    return seed_document().read_text(encoding="utf-8")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "opsdeck.db"


def opsdeck_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsdeck", *args]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPSDECK_HOME"] = str(tmp_path / "home")
    env.pop("NO_COLOR", None)
    return env

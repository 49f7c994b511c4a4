"""Where opsdeck keeps its files: the user's data directory (platformdirs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    override = os.environ.get("OPSDECK_HOME")
    return Path(override) if override else Path(platformdirs.user_data_dir("opsdeck", appauthor=False))


def default_db() -> Path:
    return data_dir() / "opsdeck.db"


def demo_db() -> Path:
    return data_dir() / "demo.db"

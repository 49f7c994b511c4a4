"""The engine's refusal, importable without the engine.

:class:`EngineError` is raised by the engine (and re-exported from ``core.engine``);
it lives here, importing nothing, so that a caller that only catches it (the command
line, before a verb's first frame) does not load the engine to do so.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """An operation that cannot be applied; nothing was changed."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

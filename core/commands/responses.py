"""The ecosystem's response shapes and the error every command failure becomes.

Success: ``{"status": "success", "operation", "workflow_id", "timestamp", "result",
"metrics", "next_steps"}``. Error: ``{"status": "error", "error": {"code",
"message", "details"}, "recovery_suggestions"}``.
"""

from __future__ import annotations

import difflib
from typing import Any


class CommandError(Exception):
    """A command that cannot run as given; nothing was changed by it."""

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None, suggestions: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.suggestions = suggestions or []


def success(
    operation: str,
    result: dict[str, Any],
    *,
    timestamp: float,
    workflow_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    next_steps: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "status": "success",
        "operation": operation,
        "workflow_id": workflow_id,
        "timestamp": round(timestamp, 3),
        "result": result,
        "metrics": metrics or {},
        "next_steps": next_steps or [],
    }


def error(
    code: str, message: str, details: dict[str, Any] | None = None, suggestions: list[str] | None = None
) -> dict[str, Any]:
    return {
        "status": "error",
        "error": {"code": code, "message": message, "details": details or {}},
        "recovery_suggestions": suggestions or [],
    }


def from_exception(exc: CommandError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.details, exc.suggestions)


DEFAULT_SUGGESTIONS: dict[str, list[str]] = {
    "WORKFLOW_NOT_FOUND": ["/coordination-hub list-workflows"],
    "CHECKPOINT_NOT_FOUND": ["/workflow-recovery list-checkpoints"],
    "AGENT_NOT_FOUND": ["/resource-manager agent-pool-assessment"],
    "POOL_NOT_FOUND": ["/resource-manager agent-pool-assessment"],
    "RESOURCE_EXHAUSTED": ["/resource-manager capacity", "/resource-manager emergency-analysis"],
    "INVALID_STATE": ["/workflow-status"],
    "WORKFLOW_FROZEN": ["/workflow-recovery execute-data-recovery", "/coordination-hub checkpoint-validation"],
    "READ_ONLY": ["reopen the console without --readonly to change state"],
    "CHECKPOINT_CORRUPT": ["/coordination-hub checkpoint-validation", "/workflow-recovery corruption-assessment"],
}


def suggest(word: str, candidates: list[str], n: int = 3) -> list[str]:
    """The candidates closest to a mistyped word (did-you-mean)."""
    got = difflib.get_close_matches(word, candidates, n=n, cutoff=0.55)
    if not got:
        got = [c for c in candidates if word and (word in c or c in word)][:n]
    return got

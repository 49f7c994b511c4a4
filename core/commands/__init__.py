"""The slash-command language: parse, validate, execute against the engine, record.

``run_command(engine, text, actor)`` is the one command path of the console's
palette, headless scripts, playbooks and tests. It never raises for bad input.
``REGISTRY`` lists every operation (component, operation, summary, payload model,
kind, mutates). The heavy modules load on first use: :mod:`core.projection`
imports :mod:`core.commands.records` while the engine itself is still loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import Engine
    from .registry import KINDS, REGISTRY, OperationSpec, Registry  # noqa: F401

__all__ = ["run_command", "REGISTRY", "KINDS", "OperationSpec", "Registry", "attach", "resolve_spec"]

_LAZY = {"REGISTRY", "KINDS", "OperationSpec", "Registry", "attach", "resolve_spec", "Outcome"}


async def run_command(engine: Engine, text: str, actor: str = "operator") -> dict:
    """Parse, validate, execute and record one command; return the response dict."""
    from .executor import run_command as _run

    return await _run(engine, text, actor)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'core.commands' has no attribute {name!r}")

"""The slash-command language: parse, validate, execute against the engine, record.

``run_command(services, text, actor)`` is the one command path of the console's
palette, headless scripts, playbooks and tests. It never raises for bad input.
``LANGUAGE`` is the registry of the language's own operations (component,
operation, summary, payload model, kind, mutates), listed in ``operations``; the
incident pipeline and the host extend it in their own packages.
"""

from __future__ import annotations

from .executor import (
    KINDS,
    LANGUAGE,
    OperationSpec,
    Outcome,
    Registry,
    Services,
    attach,
    resolve_spec,
    run_command,
)

REGISTRY = LANGUAGE
"""The language's own operations (the name the tests and benches use)."""

__all__ = [
    "KINDS",
    "LANGUAGE",
    "REGISTRY",
    "OperationSpec",
    "Outcome",
    "Registry",
    "Services",
    "attach",
    "resolve_spec",
    "run_command",
]

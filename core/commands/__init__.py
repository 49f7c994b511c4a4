"""The slash-command language: parse, validate, execute against the engine, record.

``run_command(engine, text, actor)`` is the one command path of the console's
palette, headless scripts, playbooks and tests. It never raises for bad input.
``REGISTRY`` lists every operation (component, operation, summary, payload model,
kind, mutates). The incident pipeline (``core.incidents``) adds ``/incident`` to
the registry when it is imported; nothing here imports it.
"""

from __future__ import annotations

from .executor import KINDS, REGISTRY, OperationSpec, Outcome, Registry, attach, resolve_spec, run_command

__all__ = ["KINDS", "REGISTRY", "OperationSpec", "Outcome", "Registry", "attach", "resolve_spec", "run_command"]

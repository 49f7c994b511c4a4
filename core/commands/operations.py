"""The command language's own operations, listed once: the modules that declare
them and the registry composed of them. ``/incident`` and ``/host`` extend it in
their packages (``core.incidents.language``, ``core.host.language``)."""

from __future__ import annotations

from . import (
    coordination_hub,
    debug,
    performance_monitor,
    resource_manager,
    subagents,
    task_io,
    workflow_recovery,
    workflow_status,
)
from .registry import Registry

LANGUAGE = Registry(
    coordination_hub.OPS,
    task_io.OPS,
    debug.OPS,
    performance_monitor.OPS,
    resource_manager.OPS,
    subagents.OPS,
    workflow_recovery.OPS,
    workflow_status.OPS,
)
"""The command language's own operations (no ``/incident``, no ``/host``)."""

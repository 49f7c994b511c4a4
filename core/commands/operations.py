"""The command language's own operations, listed once: the modules that declare
them and the registry composed of them. ``/incident`` and ``/host`` extend it in
their packages (``core.incidents.language``, ``core.host.language``)."""

from __future__ import annotations

from . import (
    debug,
    subagents,
    task_io,
    workflow_recovery,
    workflow_status,
)
from .coordination_hub import agents, dependencies, event_feed, lifecycle, network, protection
from .performance_monitor import metrics, optimization
from .registry import Registry
from .resource_manager import allocation, balancing, emergency, forecasts, views

LANGUAGE = Registry(
    lifecycle.OPS,
    agents.OPS,
    event_feed.OPS,
    protection.OPS,
    dependencies.OPS,
    network.OPS,
    task_io.OPS,
    debug.OPS,
    metrics.OPS,
    optimization.OPS,
    views.OPS,
    forecasts.OPS,
    allocation.OPS,
    balancing.OPS,
    emergency.OPS,
    subagents.OPS,
    workflow_recovery.OPS,
    workflow_status.OPS,
)
"""The command language's own operations (no ``/incident``, no ``/host``)."""

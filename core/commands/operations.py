"""The command language's own operations, listed once: the modules that declare
them and the registry composed of them. ``/incident`` and ``/host`` extend it in
their packages (``core.incidents.language``, ``core.host.language``).

A component split over several modules lists its first module first: that one
carries the component's help line, the others extend it."""

from __future__ import annotations

from . import debug, subagents, task_io, workflow_status
from .coordination_hub import agents, dependencies, event_feed, lifecycle, network, protection
from .performance_monitor import metrics, optimization
from .registry import Registry
from .resource_manager import allocation, balancing, emergency, forecasts, views
from .workflow_recovery import (
    checkpointing,
    context_transfer,
    data_recovery,
    failure_analysis,
    restores,
    staged_resumption,
)

LANGUAGE = Registry(
    lifecycle.OPS,  # /coordination-hub
    agents.OPS,
    event_feed.OPS,
    protection.OPS,
    dependencies.OPS,
    network.OPS,
    task_io.OPS,  # /coordination-hub, the tasks' input, output and worktrees
    debug.OPS,
    metrics.OPS,  # /performance-monitor
    optimization.OPS,
    views.OPS,  # /resource-manager
    forecasts.OPS,
    allocation.OPS,
    balancing.OPS,
    emergency.OPS,
    subagents.OPS,
    restores.OPS,  # /workflow-recovery
    checkpointing.OPS,
    data_recovery.OPS,
    failure_analysis.OPS,
    staged_resumption.OPS,
    context_transfer.OPS,
    workflow_status.OPS,
)
"""The command language's own operations (no ``/incident``, no ``/host``)."""

"""The command language's own operation modules, listed once: importing this module
declares their operations in the registry (the executor imports it; nothing below does)."""

from __future__ import annotations

from . import (
    coordination_hub,
    debug,
    performance_monitor,
    resource_manager,
    subagents,
    workflow_recovery,
    workflow_status,
)

MODULES = (
    coordination_hub,
    debug,
    performance_monitor,
    resource_manager,
    subagents,
    workflow_recovery,
    workflow_status,
)

"""``/workflow-recovery``: restores, rollbacks, failure analysis, staged resumption,
context transfer, learning, data recovery.

One module per group of operations, each declaring its own ``Operations`` of the
component; ``core.commands.operations`` lists them (``restores`` first: it carries the
component's help line).
"""

from __future__ import annotations

C = "workflow-recovery"
"""The component's name, as commands spell it."""

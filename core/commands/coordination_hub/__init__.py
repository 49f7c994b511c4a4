"""``/coordination-hub``: workflow lifecycle, agents, events, checkpoints, protection.

One module per group of operations, each declaring its own ``Operations`` of the
component; ``core.commands.operations`` lists them (``lifecycle`` first: it carries
the component's help line).
"""

from __future__ import annotations

C = "coordination-hub"
"""The component's name, as commands spell it."""

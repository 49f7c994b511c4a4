"""``/resource-manager``: capacity, allocation, reservation and reallocation.

One module per group of operations, each declaring its own ``Operations`` of the
component; ``core.commands.operations`` lists them (``views`` first: it carries the
component's help line). ``holdings`` holds the figures they share.
"""

from __future__ import annotations

C = "resource-manager"
"""The component's name, as commands spell it."""

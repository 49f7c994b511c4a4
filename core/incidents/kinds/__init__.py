"""The incident kinds opsdeck knows, one module each (detector, evidence, playbook,
criterion, validation window, drill), listed here explicitly.

``CATALOGUE`` is what the manager, executor, drills and console iterate over; a new
kind is a module building an :class:`~core.incidents.catalogue.IncidentKind` and one
entry below (or, for a test, ``CATALOGUE.with_kind(kind)``).
"""

from __future__ import annotations

from ..catalogue import Catalogue
from . import (
    agent_cascade,
    data_integrity,
    network_partition,
    performance_degradation,
    rate_limit,
    resource_exhaustion,
    usage_budget,
)

CATALOGUE = Catalogue(
    [
        resource_exhaustion.KIND,
        agent_cascade.KIND,
        performance_degradation.KIND,
        data_integrity.KIND,
        network_partition.KIND,
        usage_budget.KIND,
        rate_limit.KIND,
    ]
)

SCENARIOS: tuple[str, ...] = CATALOGUE.names()
"""The kinds' names, in the catalogue's order."""

GATES = CATALOGUE.gates()
"""Every validation a plan may name (the kinds' criteria and the shared gates), by name."""

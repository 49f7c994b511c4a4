"""``/performance-monitor``: live metrics, trends, bottlenecks, optimisation and monitoring settings.

``metrics`` (readings and analyses, with the component's help line) and ``optimization``
(what changes settings or acts), listed in ``core.commands.operations``.
"""

from __future__ import annotations

C = "performance-monitor"
"""The component's name, as commands spell it."""

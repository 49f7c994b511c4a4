"""``/metrics`` for AI agents' usage: tokens and money per workflow, pool and agent as
the tasks reported them, budgets and how much of each is used, rate-limit holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..engine import Engine
    from ..usage.models import Spend


class UsageCollector(Collector):
    """Read from the projection's usage ledger when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        led = self.engine.state.usage
        tokens = CounterMetricFamily(
            "opsdeck_usage_tokens",
            "Tokens AI agents reported (input includes cached input), by scope, name and kind.",
            labels=["scope", "name", "kind"],
        )
        cost = CounterMetricFamily(
            "opsdeck_usage_cost_usd", "Money AI agents reported (USD), by scope and name.", labels=["scope", "name"]
        )
        scopes: list[tuple[str, dict[str, Spend]]] = [
            ("workflow", led.workflows),
            ("pool", led.pools),
            ("agent", led.agents),
        ]
        for scope, table in scopes:
            for name, s in sorted(table.items()):
                tokens.add_metric([scope, name, "input"], s.input_tokens)
                tokens.add_metric([scope, name, "output"], s.output_tokens)
                tokens.add_metric([scope, name, "cached_input"], s.cached_input_tokens)
                cost.add_metric([scope, name], s.cost_usd)
        yield tokens
        yield cost
        budget = GaugeMetricFamily(
            "opsdeck_usage_budget", "Budgets of workflows and pools, by unit.", labels=["scope", "name", "unit"]
        )
        used = GaugeMetricFamily(
            "opsdeck_usage_budget_used_ratio",
            "The largest share of its budget a workflow or pool has spent (1: reached).",
            labels=["scope", "name"],
        )
        for st in sorted(led.budgets.values(), key=lambda b: (b.scope, b.name)):
            if st.budget.tokens is not None:
                budget.add_metric([st.scope, st.name, "tokens"], st.budget.tokens)
            if st.budget.cost_usd is not None:
                budget.add_metric([st.scope, st.name, "usd"], st.budget.cost_usd)
            used.add_metric([st.scope, st.name], st.budget.share(led.spend_of(st.scope, st.name)))
        yield budget
        yield used
        held = GaugeMetricFamily(
            "opsdeck_pool_rate_limit_reset_timestamp_seconds",
            "Pools held after a rate limit: when the hold's reset time is (engine clock).",
            labels=["pool"],
        )
        for pool, h in sorted(led.holds.items()):
            held.add_metric([pool], h.reset_at)
        yield held
        yield CounterMetricFamily(
            "opsdeck_usage_lines_ignored", "Usage lines tasks printed that could not be read.", value=led.ignored_lines
        )

"""Tokens and money as the panes show them: compact figures and their budget colour."""

from __future__ import annotations

from core.usage.models import BudgetState, Spend

SPEND_W = 14
"""Cells of a spend column: ``12.3k $0.4200``."""


def fmt_tokens(n: int) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M (what a column of that width can hold)."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n / 1_000_000_000:.1f}G"


def fmt_cost(usd: float) -> str:
    return f"${usd:.4f}" if usd < 10 else (f"${usd:.2f}" if usd < 1000 else f"${usd:,.0f}")


def fmt_spend(s: Spend) -> str:
    """``tokens cost`` right-aligned in :data:`SPEND_W` cells."""
    return f"{fmt_tokens(s.tokens):>6} {fmt_cost(s.cost_usd):>7}"[-SPEND_W:].rjust(SPEND_W)


def budget_level(st: BudgetState | None, s: Spend) -> str:
    """The theme colour name for spend against its budget: over, warned, fine (or none)."""
    if st is None:
        return "foreground-muted"
    share = st.budget.share(s)
    if share >= 1.0:
        return "error"
    if share >= st.warn_share:
        return "warning"
    return "success"

"""Figures as the panes draw them: htop-style meters and sparklines as Rich text, and
tokens and money as compact figures with their budget colour."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from core.usage.models import BudgetState, Spend

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, lo: float = 0.0, hi: float = 100.0) -> str:
    """The last ``width`` values as block characters scaled to ``lo..hi``."""
    vals = list(values)
    if not vals:
        return " " * width
    if len(vals) > width:
        # Average into ``width`` buckets so the line covers the whole history kept.
        n = len(vals)
        vals = [
            sum(vals[i * n // width : (i + 1) * n // width]) / max(len(vals[i * n // width : (i + 1) * n // width]), 1)
            for i in range(width)
        ]
    span = (hi - lo) or 1.0
    out = []
    for v in vals:
        f = min(max((v - lo) / span, 0.0), 1.0)
        out.append(SPARK[min(int(f * len(SPARK)), len(SPARK) - 1)])
    return "".join(out).rjust(width)


def gauge(
    pct: float,
    width: int,
    fill: str,
    empty: str,
    warn_at: float | None = None,
    warn: str = "",
    crit_at: float | None = None,
    crit: str = "",
) -> Text:
    """A percentage bar: ``[|||||     ]`` coloured by threshold."""
    pct = max(0.0, min(pct, 100.0))
    inner = max(width - 2, 1)
    n = round(pct / 100.0 * inner)
    style = fill
    if crit_at is not None and pct >= crit_at:
        style = crit
    elif warn_at is not None and pct >= warn_at:
        style = warn
    t = Text("[")
    t.append("|" * n, style=style)
    t.append(" " * (inner - n), style=empty)
    t.append("]")
    return t


def alloc_meter(used: float, alloc: float, width: int, used_style: str, alloc_style: str, over_style: str) -> Text:
    """Allocation against actual use, as htop draws memory: used ``|``, allocated-but-idle ``·``.

    The bar's full width is the larger of the allocation and the use, so a workflow
    using more than it was allocated shows the excess in ``over_style``.
    """
    inner = max(width - 2, 1)
    top = max(alloc, used, 1e-9)
    n_used = round(min(used, alloc) / top * inner)
    n_over = round(max(used - alloc, 0.0) / top * inner)
    n_alloc = max(round(alloc / top * inner) - n_used, 0)
    rest = max(inner - n_used - n_over - n_alloc, 0)
    t = Text("[")
    t.append("|" * n_used, style=used_style)
    t.append("!" * n_over, style=over_style)
    t.append("·" * n_alloc, style=alloc_style)
    t.append(" " * rest)
    t.append("]")
    return t


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

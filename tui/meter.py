"""htop-style meters and sparklines rendered as Rich text."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

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

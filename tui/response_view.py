"""A command's response rendered for people: tables for lists, key/value panels, trees.

Every slash command answers with the ecosystem's response shape (``status``,
``result``, ``metrics``, ``next_steps`` or ``error`` with ``recovery_suggestions``).
The result view shows it the way an operator reads it: a list of records becomes a
table with a header, a mapping of records (``{"workflow_001": {...}}``) a table whose
first column is the key, a flat mapping a key/value panel, deeper nesting a tree.
Nothing is invented here: every cell is a value of the response.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from core import timefmt

MAX_ROWS = 500
"""Rows shown per table; the rest are counted (``y`` copies the whole response)."""

Colour = Callable[[str], str]


def label(key: str) -> str:
    """A field name for people (``cpu_cores`` -> ``cpu cores``); ids (``workflow_001``) stay as they are."""
    return key if any(ch.isdigit() for ch in key) else key.replace("_", " ")


def cell(v: Any) -> str:
    """One value as a table cell: numbers trimmed, None as a dash, small maps inline."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, dict):
        return "  ".join(f"{k} {cell(x)}" for k, x in v.items()) or "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(cell(x) for x in v) or "—"
    return str(v)


def _is_records(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _is_keyed_records(v: Any) -> bool:
    return isinstance(v, dict) and len(v) > 0 and all(isinstance(x, dict) for x in v.values())


def _is_flat(v: dict[str, Any]) -> bool:
    return all(not isinstance(x, dict) or all(not isinstance(y, (dict, list)) for y in x.values()) for x in v.values())


def _flat(r: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """A record with its small nested maps spread into sub-columns (``allocation`` / ``cpu_cores``)."""
    out: dict[tuple[str, str], Any] = {}
    for k, v in r.items():
        if isinstance(v, dict) and v and len(v) <= 6 and all(not isinstance(x, (dict, list)) for x in v.values()):
            for sk, sv in v.items():
                out[(k, sk)] = sv
        else:
            out[(k, "")] = v
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def field_cell(key: str, v: Any) -> str:
    """A value with its field's meaning: ``*_at``, ``t`` (a sample's time), ``ts`` and
    ``onset`` as clock times, ``*_s`` as durations; a list of such numbers each so."""
    if isinstance(v, list) and v and all(_number(x) for x in v):
        return ", ".join(field_cell(key, x) for x in v)
    if _number(v):
        if key.endswith("_at") or key in ("t", "ts", "timestamp", "clock", "now", "onset"):
            return timefmt.clock(float(v))
        if key.endswith("_s") and v >= 60:
            return timefmt.duration(float(v))
    return cell(v)


class RecordsTable:
    """A table with a header row fitted to the width it is drawn at: columns keep their
    natural width, the first stays whole, and the columns that do not fit are named in
    a caption (``j`` shows them in the raw JSON) instead of being folded into slivers."""

    def __init__(
        self,
        title: str,
        rows: list[dict[str, Any]],
        c: Colour,
        key_column: str | None = None,
        keys: list[str] | None = None,
    ) -> None:
        self.title, self.rows, self.c, self.key_column, self.keys = title, rows, c, key_column, keys

    def __rich_console__(self, console: Any, options: Any) -> Any:
        c = self.c
        flat = [_flat(r) for r in self.rows[:MAX_ROWS]]
        cols: list[tuple[str, str]] = []
        for r in flat:
            for k in r:
                if k not in cols:
                    cols.append(k)
        cells = [
            [field_cell(sub or name, r[(name, sub)]) if (name, sub) in r else "" for name, sub in cols] for r in flat
        ]
        heads = [label(sub or name) for name, sub in cols]
        widths = [max([len(heads[i])] + [min(len(row[i]), 40) for row in cells]) for i in range(len(cols))]
        key_w = max([len(self.key_column or "")] + [len(k) for k in (self.keys or [])]) if self.key_column else 0
        room = options.max_width - (key_w + 2 if self.key_column else 0)
        shown: list[int] = []
        for i, w in enumerate(widths):
            if room - (w + 2) < 0 and shown:
                continue
            shown.append(i)
            room -= w + 2
        hidden = [
            label(cols[i][1] or cols[i][0]) if not cols[i][1] else f"{label(cols[i][0])}.{label(cols[i][1])}"
            for i in range(len(cols))
            if i not in shown
        ]
        t = Table(
            title=f"{self.title} ({len(self.rows)})",
            title_justify="left",
            title_style=f"bold {c('secondary')}",
            header_style=f"bold {c('primary')}",
            expand=False,
            box=None,
            pad_edge=False,
            padding=(0, 2, 0, 0),
        )
        if self.key_column:
            t.add_column(self.key_column, style="bold", no_wrap=True)
        prev = ""
        for n, i in enumerate(shown):
            name, sub = cols[i]
            head = heads[i] if not sub else (f"{label(name)}\n" if name != prev else "\n") + heads[i]
            numeric = all(
                isinstance(r.get((name, sub)), (int, float)) and not isinstance(r.get((name, sub)), bool)
                for r in flat
                if (name, sub) in r
            )
            t.add_column(
                head,
                overflow="fold",
                justify="right" if numeric else "left",
                no_wrap=n == 0 and not self.key_column,
                min_width=min(widths[i], 12),
            )
            prev = name if sub else ""
        for ri, row in enumerate(cells):
            t.add_row(*(([self.keys[ri]] if self.key_column and self.keys else []) + [row[i] for i in shown]))
        notes = []
        if len(self.rows) > MAX_ROWS:
            notes.append(f"… {len(self.rows) - MAX_ROWS} more row(s)")
        if hidden:
            notes.append(f"{len(hidden)} more column(s) at this width: {', '.join(hidden)} (j: raw JSON)")
        if notes:
            t.caption = "; ".join(notes)
            t.caption_justify = "left"
        yield t


def records_table(
    title: str, rows: list[dict[str, Any]], c: Colour, key_column: str | None = None, keys: list[str] | None = None
) -> RecordsTable:
    return RecordsTable(title, rows, c, key_column, keys)


def kv_table(data: dict[str, Any], c: Colour) -> Table:
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    t.add_column(style=f"bold {c('secondary')}", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in data.items():
        t.add_row(label(str(k)), field_cell(str(k), v))
    return t


def tree(label: str, v: Any, c: Colour, node: Tree | None = None) -> Tree:
    """Nested data as a tree, for what is neither a table nor a flat panel."""
    t = (
        node
        if node is not None
        else Tree(Text(label, style=f"bold {c('secondary')}"), guide_style=c("foreground-muted"))
    )
    if isinstance(v, dict):
        for k, x in v.items():
            if (
                isinstance(x, (dict, list))
                and x
                and not (isinstance(x, list) and all(not isinstance(y, (dict, list)) for y in x))
            ):
                tree("", x, c, t.add(Text(str(k), style="bold")))
            else:
                t.add(Text.assemble((f"{k} ", "bold"), field_cell(str(k), x)))
    elif isinstance(v, list):
        for i, x in enumerate(v[:MAX_ROWS]):
            if isinstance(x, (dict, list)):
                tree("", x, c, t.add(Text(f"[{i}]", style=c("foreground-muted"))))
            else:
                t.add(cell(x))
    else:
        t.add(cell(v))
    return t


def section(name: str, v: Any, c: Colour) -> RenderableType:
    title = label(name)
    if _is_records(v):
        return records_table(title, v, c)
    if _is_keyed_records(v) and _is_flat(v):
        keys = list(v)
        return records_table(title, [v[k] for k in keys], c, key_column="id", keys=keys)
    if isinstance(v, dict) and _is_flat(v):
        return Group(
            Text(title, style=f"bold {c('secondary')}"),
            kv_table(v, c) if v else Text("  (empty)", style=c("foreground-muted")),
        )
    if isinstance(v, list) and not v:
        return Text.assemble((title, f"bold {c('secondary')}"), ("  (none)", c("foreground-muted")))
    return tree(title, v, c)


def render_result(result: Any, c: Colour) -> list[RenderableType]:
    """The ``result`` of a success: its summary, its scalars as a panel, each collection as a section."""
    if not isinstance(result, dict):
        return [Text(cell(result))]
    parts: list[RenderableType] = []
    summary = result.get("summary")
    if isinstance(summary, str) and summary:
        parts += [Text(summary, style="bold"), Text("")]
    scalars = {
        k: v
        for k, v in result.items()
        if k != "summary"
        and not isinstance(v, dict)
        and not (isinstance(v, list) and (not v or any(isinstance(x, (dict, list)) for x in v)))
    }
    if scalars:
        parts += [kv_table(scalars, c), Text("")]
    for k, v in result.items():
        if k == "summary" or k in scalars:
            continue
        parts += [section(k, v, c), Text("")]
    if not parts:
        parts.append(Text("(the command returned no data)", style=c("foreground-muted")))
    return parts


def render_error(res: dict[str, Any], c: Colour) -> list[RenderableType]:
    err = res.get("error") or {}
    parts: list[RenderableType] = [
        Text.assemble(
            ("✖ ", f"bold {c('error')}"),
            (str(err.get("code", "ERROR")), f"bold {c('error')}"),
            "  ",
            str(err.get("message", "")),
        ),
        Text("Nothing was applied.", style=c("foreground-muted")),
        Text(""),
    ]
    details = {k: v for k, v in (err.get("details") or {}).items() if k not in ("suggestions",)}
    suggestions = list((err.get("details") or {}).get("suggestions") or [])
    for s in res.get("recovery_suggestions") or []:
        if s not in suggestions:
            suggestions.append(s)
    if suggestions:
        parts.append(Text("Try", style=f"bold {c('secondary')}"))
        parts += [Text(f"  {s}", style=c("primary")) for s in suggestions]
        parts.append(Text(""))
    if details:
        parts += [Text("Details", style=f"bold {c('secondary')}"), kv_table(details, c)]
    return parts


def render_response(res: dict[str, Any], c: Colour) -> RenderableType:
    """The whole response: the result (or the error), then next steps and metrics."""
    if res.get("status") != "success":
        return Group(*render_error(res, c))
    parts = render_result(res.get("result"), c)
    steps = res.get("next_steps") or []
    if steps:
        parts.append(Text("Next steps", style=f"bold {c('secondary')}"))
        parts += [Text(f"  {s}", style=c("primary")) for s in steps]
        parts.append(Text(""))
    metrics = res.get("metrics") or {}
    if metrics:
        parts.append(
            Text("  ".join(f"{label(k)} {field_cell(k, v)}" for k, v in metrics.items()), style=c("foreground-muted"))
        )
    return Group(*parts)


def response_json(res: dict[str, Any]) -> str:
    return json.dumps(res, indent=2, ensure_ascii=False, default=str)

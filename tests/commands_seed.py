"""Reading the seed document: its slash commands and event lines, in order, by scenario."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .conftest import seed_document


@dataclass
class SeedItem:
    scenario: str
    kind: str  # "command" or "event"
    text: str
    line: int


def seed_items(text: str | None = None) -> list[SeedItem]:
    """Every slash command (multi-line JSON joined) and event line in the bash blocks."""
    if text is None:
        text = seed_document().read_text(encoding="utf-8")
    items: list[SeedItem] = []
    scenario = ""
    in_block = False
    buf: list[str] = []
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("### Scenario:"):
            scenario = line.removeprefix("### Scenario:").strip()
        if line.startswith("```"):
            in_block = line.strip() == "```bash"
            continue
        if not in_block:
            continue
        if buf:
            buf.append(line)
            if "\n".join(buf).count("'") % 2 == 0:
                items.append(SeedItem(scenario, "command", "\n".join(buf), start))
                buf = []
            continue
        if line.startswith("/"):
            buf = [line]
            start = n
            if line.count("'") % 2 == 0:
                items.append(SeedItem(scenario, "command", line, n))
                buf = []
        elif re.match(r"^[A-Z][A-Z0-9_]*:", line):
            items.append(SeedItem(scenario, "event", line, n))
    return items

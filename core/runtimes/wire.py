"""The agent socket's framing: one JSON object per line, both directions.

Shared by the console side (``local.py``) and the agent host (``agent_host.py``);
it imports nothing heavy so that an agent host starts fast.

A line may be up to :data:`MAX_LINE` bytes (the readers' buffer limit); senders keep
theirs far under it (output lines and partial results are capped where they are
made). A longer line is skipped whole and the reader is handed an
``{"t": "oversize", "bytes": N}`` message in its place, so the connection stays in
step and the receiver can fail what the message was about, with the reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

MAX_LINE = 16 * 1024 * 1024
"""The longest message a reader takes (bytes, its newline included)."""
OVERSIZE = "oversize"
_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""What ``json.dumps(msg, separators=...)`` builds on each call, built once."""


def encode(msg: dict[str, Any]) -> bytes:
    return (_ENCODER.encode(msg) + "\n").encode()


async def messages(reader: asyncio.StreamReader) -> AsyncIterator[Any]:
    """Each message until the peer closes; a garbled line is skipped, not fatal; a
    line over the reader's limit is skipped and reported as an ``oversize`` message."""
    skipped = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() and not skipped:
                try:
                    yield json.loads(exc.partial)
                except json.JSONDecodeError:
                    pass
            return
        except asyncio.LimitOverrunError as exc:
            # Over the limit: drop what is buffered (bounded memory), keep going to its end.
            await reader.readexactly(max(exc.consumed, 1))
            skipped += max(exc.consumed, 1)
            continue
        if skipped:
            yield {"t": OVERSIZE, "bytes": skipped + len(line)}
            skipped = 0
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue

"""The agent socket's framing: one JSON object per line, both directions.

Shared by the console side (``local.py``) and the agent host (``agent_host.py``);
it imports nothing heavy so that an agent host starts fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any


def encode(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


async def messages(reader: asyncio.StreamReader) -> AsyncIterator[Any]:
    """Each message until the peer closes; a garbled line is skipped, not fatal."""
    while True:
        line = await reader.readline()
        if not line:
            return
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue

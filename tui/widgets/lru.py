"""The bounded caches of the event log pane (its events, drawn rows and progress counts)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(OrderedDict[K, V]):
    """A bounded mapping that forgets the least recently used entry."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_lru(self, key: K) -> V | None:
        v = super().get(key)
        if v is not None:
            self.move_to_end(key)
        return v

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)

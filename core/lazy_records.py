"""Records kept as their stored text until someone reads them.

Opening a log with much history loads every finished workflow's summary, but most
opens read few of them (a host answers about live work; a listing reads them all
once). Each summary stays the canonical text the store kept (checked against the
checkpoint's digest before it gets here) and becomes a model the first time it is
read: an open pays for the text, not for a thousand validated models (nor the
collector's walk over them).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

from pydantic import BaseModel

K = TypeVar("K")
M = TypeVar("M", bound=BaseModel)


class LazyRecords(MutableMapping[K, M], Generic[K, M]):
    """A mapping of records, each built from its stored text (``model.model_validate_json``)
    when first read; membership, length and keys never build one."""

    def __init__(self, model: type[M], texts: dict[K, str]) -> None:
        self._model = model
        self._items: dict[K, M | str] = dict(texts)
        self._stored: set[K] = set(texts)
        """Keys whose record is still the one read from its stored text (built or not)."""

    def __getitem__(self, key: K) -> M:
        v = self._items[key]
        if isinstance(v, str):
            v = self._items[key] = self._model.model_validate_json(v)
        return v

    def get(self, key: K, default: M | None = None) -> M | None:  # type: ignore[override]
        if key not in self._items:
            return default
        return self[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __setitem__(self, key: K, value: M) -> None:
        self._items[key] = value
        self._stored.discard(key)

    def __delitem__(self, key: K) -> None:
        del self._items[key]
        self._stored.discard(key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LazyRecords({self._model.__name__}, {len(self._items)} records)"

    def unbuilt(self) -> int:
        """How many records are still only their stored text."""
        return sum(isinstance(v, str) for v in self._items.values())

    def from_stored(self, key: K) -> bool:
        """Whether ``key``'s record is still the one its stored text holds (not replaced)."""
        return key in self._stored

"""The history parts of a snapshot: finished workflows' summaries and checkpoint records.

Both grow with history, not with live work. A snapshot (a checkpoint's stored state,
the state hash) holds for each part only a count and a digest over its entries; the
entries are kept beside the checkpoints, in the store's ``snapshot_history`` table
(each entry's canonical text with the range of checkpoint seqs it holds for), written
once when an entry appears or changes. So a checkpoint costs what the live state
holds, storage and opening grow linearly with history, and the digest in the hashed
snapshot still makes any change to a kept entry show.

Snapshots written before this (``finished`` and ``checkpoints`` held whole) are read
and replayed as they are: their form is :func:`is_compact` false.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .events import canonical_json
from .lazy_records import LazyRecords
from .models import Checkpoint, FinishedWorkflow

HistoryPart = Literal["finished", "checkpoints"]
HISTORY_PARTS: tuple[HistoryPart, ...] = ("finished", "checkpoints")
DIGEST_KEYS: dict[HistoryPart, str] = {"finished": "finished_digest", "checkpoints": "checkpoints_digest"}
"""Where a compact snapshot holds each part's count and digest (in place of the part)."""

HistoryRows = dict[str, dict[str, str]]
"""part -> entry key -> the entry's canonical text, as the store keeps them."""
HistoryChange = tuple[str, str, str | None, str | None]
"""(part, key, canonical text, its SHA-256) of an entry to keep; text and hash None: gone."""


def entry_text(model: BaseModel) -> str:
    """The canonical text of one entry (a checkpoint record without its label, which
    is operator text kept in the checkpoints table)."""
    exclude = {"label"} if isinstance(model, Checkpoint) else None
    return canonical_json(model.model_dump(mode="json", exclude=exclude))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest_line(key: str, entry_hash: str) -> bytes:
    """One entry's line of its part's digest."""
    return f"{key}\n{entry_hash}\n".encode()


def digest_of_lines(lines: list[bytes]) -> dict[str, Any]:
    """Count and SHA-256 over entries' :func:`digest_line`, given in key order."""
    return {"count": len(lines), "sha256": hashlib.sha256(b"".join(lines)).hexdigest()}


def digest_of(hashes: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Count and SHA-256 over (key, entry hash) pairs, given in key order."""
    return digest_of_lines([digest_line(key, eh) for key, eh in hashes])


def is_compact(snap: Mapping[str, Any]) -> bool:
    """A snapshot whose history parts are digests (kept beside it), not whole."""
    return DIGEST_KEYS["finished"] in snap and "finished" not in snap


def _mismatch(part: HistoryPart, found: int) -> str:
    return f"the {part} entries kept beside it do not match its digest ({found} found)"


def rows_problem(snap: Mapping[str, Any], rows: HistoryRows) -> str | None:
    """What is wrong with the entries kept beside a compact snapshot (None: they are
    exactly the ones its digests name)."""
    for part in HISTORY_PARTS:
        texts = rows.get(part, {})
        got = digest_of((k, text_hash(texts[k])) for k in sorted(texts))
        if got != snap.get(DIGEST_KEYS[part]):
            return _mismatch(part, len(texts))
    return None


@dataclass
class Entry:
    model: BaseModel | None
    """The record hashed (None: the one read from the stored text, in a :class:`LazyRecords`)."""
    hash: str
    text: str | None
    """The canonical text until the store has it (then None: the hash is enough); kept
    for an entry read from the store as text, whose record may not be built."""
    line: bytes
    """Its :func:`digest_line`, kept: a checkpoint's digest joins the lines of every
    entry, so building them anew cost most of it (two thirds at 10,000 entries)."""


class HistoryCache:
    """Each history entry's hash, computed once per record object (records of these
    parts are replaced, never changed in place, so the object names its content)."""

    def __init__(self) -> None:
        self.parts: dict[HistoryPart, dict[str, Entry]] = {p: {} for p in HISTORY_PARTS}

    def entries(self, part: HistoryPart, records: Mapping[Any, BaseModel]) -> dict[str, Entry]:
        """The entries of ``records`` (the state's part now), hashed where new or replaced."""
        old = self.parts[part]
        new: dict[str, Entry] = {}
        lazy = records if isinstance(records, LazyRecords) else None
        for k in records:
            key = str(k)
            e = old.get(key)
            if e is not None and e.model is None and lazy is not None and lazy.from_stored(k):
                new[key] = e  # still the stored text it was hashed from: not built to be hashed
                continue
            model = records[k]
            if e is None or e.model is not model:
                text = entry_text(model)
                h = text_hash(text)
                e = Entry(model, h, text, digest_line(key, h))
            new[key] = e
        self.parts[part] = new
        return new

    def digest(self, part: HistoryPart, records: Mapping[Any, BaseModel]) -> dict[str, Any]:
        entries = self.entries(part, records)
        return digest_of_lines([entries[k].line for k in sorted(entries)])

    def load(self, rows: HistoryRows) -> tuple[LazyRecords[str, FinishedWorkflow], dict[int, Checkpoint]]:
        """The records of entries the store keeps (checked against a snapshot's digests),
        each remembered with the hash of its stored text. Finished workflows stay their
        stored text until read (a :class:`LazyRecords`): the digest check covered it."""
        records: dict[int, Checkpoint] = {}
        self.parts = {p: {} for p in HISTORY_PARTS}
        texts = dict(sorted(rows.get("finished", {}).items()))
        for key, text in texts.items():
            h = text_hash(text)
            self.parts["finished"][key] = Entry(None, h, text, digest_line(key, h))
        finished = LazyRecords(FinishedWorkflow, texts)
        for key, text in sorted(rows.get("checkpoints", {}).items(), key=lambda kv: int(kv[0])):
            cp = records[int(key)] = Checkpoint.model_validate_json(text)
            h = text_hash(text)
            self.parts["checkpoints"][key] = Entry(cp, h, None, digest_line(key, h))
        return finished, records

    def loaded_problem(self, snap: Mapping[str, Any]) -> str | None:
        """:func:`rows_problem` for the entries :meth:`load` took, over the hashes it
        computed (an open hashes each entry once): None when they are exactly the ones
        the snapshot's digests name."""
        for part in HISTORY_PARTS:
            entries = self.parts[part]
            if digest_of_lines([entries[k].line for k in sorted(entries)]) != snap.get(DIGEST_KEYS[part]):
                return _mismatch(part, len(entries))
        return None

    def changes(self, kept: Mapping[str, Mapping[str, str]]) -> list[HistoryChange]:
        """What the store must write so that its open entries (``kept``: part -> key ->
        hash) become the entries of the last digests taken."""
        out: list[HistoryChange] = []
        for part in HISTORY_PARTS:
            cur, old = self.parts[part], kept.get(part, {})
            for key, e in cur.items():
                if old.get(key) != e.hash:
                    text = e.text if e.text is not None or e.model is None else entry_text(e.model)
                    assert text is not None, "an entry read as text keeps its text"
                    out.append((part, key, text, e.hash))
            out.extend((part, key, None, None) for key in old.keys() - cur.keys())
        return out

    def written(self, changes: Iterable[HistoryChange]) -> None:
        """The store has these entries: their texts need not be held any more."""
        for part, key, _, _ in changes:
            e = self.parts[part].get(key)  # type: ignore[index]
            if e is not None and e.model is not None:
                e.text = None


KeptRow = tuple[str, str, int, int | None, str]
"""(part, key, from_seq, to_seq, entry text): one row of the store's ``snapshot_history``."""


def kept_problems(rows: Iterable[KeptRow], digests: Iterable[tuple[int, int, Mapping[str, Any]]]) -> dict[int, str]:
    """For each compact checkpoint (id, seq, its digests by part) whose kept entries do
    not match its digests, why. One pass: each entry's text is hashed once and the
    entries holding at each checkpoint's seq are followed as the seqs increase."""
    hashed = sorted((f, part, key, t, text_hash(text)) for part, key, f, t, text in rows)
    active: dict[str, dict[str, tuple[int | None, str]]] = {p: {} for p in HISTORY_PARTS}
    out: dict[int, str] = {}
    i = 0
    for cp_id, seq, want in sorted(digests, key=lambda d: (d[1], d[0])):
        while i < len(hashed) and hashed[i][0] <= seq:
            _, part, key, to, h = hashed[i]
            active.setdefault(part, {})[key] = (to, h)
            i += 1
        for part in HISTORY_PARTS:
            held = active[part]
            for key in [k for k, (to, _) in held.items() if to is not None and to <= seq]:
                del held[key]
            got = digest_of((k, held[k][1]) for k in sorted(held))
            if got != want.get(part):
                out[cp_id] = f"the {part} entries kept beside it do not match its digest ({len(held)} found)"
                break
    return out


def kept_rows(finished: Mapping[str, BaseModel], records: Mapping[int, BaseModel]) -> HistoryRows:
    """The entries a store keeps for these history parts (each entry's canonical text)."""
    return {
        "finished": {k: entry_text(v) for k, v in finished.items()},
        "checkpoints": {str(k): entry_text(v) for k, v in records.items()},
    }


def expand(snap: dict[str, Any], rows: HistoryRows) -> dict[str, Any]:
    """A compact snapshot with its history parts put back whole (decoded entries), the
    form a state is built from and a rollback carries."""
    out = dict(snap)
    out["finished"] = {k: json.loads(t) for k, t in sorted(rows.get("finished", {}).items())}
    out["checkpoints"] = {
        k: json.loads(t) for k, t in sorted(rows.get("checkpoints", {}).items(), key=lambda kv: int(kv[0]))
    }
    return out

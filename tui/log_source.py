"""Windowed reads of the event log from SQLite, in the manner of Toolong.

The event log pane never loads the whole log: it asks for the rows it shows plus
a margin, by sequence number (``seq`` is the primary key, gap-free and 1-based in a
sound log, so row *i* of the unfiltered log is event ``i + 1``). A filter is a query that
returns only the matching sequence numbers, kept as a compact ``array``. Every
method here is blocking and runs in a worker thread, never on the UI loop.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
import threading
from array import array
from dataclasses import dataclass
from pathlib import Path

from core.event_types import EVENTS, TASK_PROGRESS, TASK_STARTED, known_types, severity_of
from core.events import Event, Severity, canonical_json

STARTS_LOOKED_AT = 5_000
"""How far back (in TASK_STARTED rows) a task row looks for the start of its run."""

SEVERITIES = tuple(s.value for s in reversed(Severity))
"""Worst first, as the filter's error message lists them."""
MILDEST = min(Severity, key=lambda s: s.rank)
"""``sev:`` of the mildest severity is every event (X or worse)."""


class FilterError(ValueError):
    """A filter the log cannot apply (an unknown severity or event type); nothing changed."""


@dataclass(frozen=True)
class LogFilter:
    """What ``/`` typed: ``type:X``, ``wf:X`` (or ``workflow:X``), ``sev:X``, or free text.

    ``wf:X`` matches events that name workflow X exactly or one of its tasks (``X/...``);
    ``wf:X*`` matches every workflow whose id starts with X; ``sev:X`` is X or worse.
    ``progress`` False (the default) leaves TASK_PROGRESS out: progress folds into its
    task's row (``type:TASK_PROGRESS`` still asks for it). The same test runs in SQL
    for stored rows (:meth:`LogSource.filter_seqs`) and in Python for live ones
    (:meth:`matches`), so re-applying a filter never changes its count.
    """

    text: str = ""
    type: str = ""
    workflow: str = ""
    severity: str = ""
    progress: bool = False

    @classmethod
    def parse(cls, raw: str, saved: dict[str, str] | None = None, progress: bool = False) -> LogFilter:
        """Raises :class:`FilterError` for an unknown severity (listing the valid ones) or
        an unknown saved filter; ``@name`` stands for the saved filter ``name``."""
        text: list[str] = []
        fields: dict[str, str] = {}
        words: list[str] = []
        for word in raw.split():
            if word.startswith("@") and len(word) > 1:
                name = word[1:]
                if saved is None or name not in saved:
                    known = ", ".join(f"@{n}" for n in sorted(saved or {})) or "none ([console.filters] in the config)"
                    raise FilterError(
                        f"no saved filter {word!r}: saved filters are {known}; the filter was not changed"
                    )
                words += saved[name].split()
            else:
                words.append(word)
        for word in words:
            key, sep, value = word.partition(":")
            key = key.lower()
            if sep and value and key in ("type", "t"):
                fields["type"] = value.upper()
            elif sep and value and key in ("wf", "workflow", "w"):
                fields["workflow"] = value
            elif sep and value and key in ("sev", "severity", "s"):
                sev = value.lower()
                if sev not in SEVERITIES:
                    raise FilterError(
                        f"unknown severity {value!r}: use one of {', '.join(SEVERITIES)}; the filter was not changed"
                    )
                fields["severity"] = sev
            else:
                text.append(word)
        return cls(text=" ".join(text), progress=progress, **fields)

    @property
    def wf_prefix(self) -> bool:
        return self.workflow.endswith("*")

    @property
    def wf_id(self) -> str:
        return self.workflow.rstrip("*")

    @property
    def active(self) -> bool:
        """Whether the operator typed a filter (what the title names)."""
        return bool(self.text or self.type or self.workflow or self.severity)

    @property
    def by_severity(self) -> bool:
        """Whether ``sev:`` leaves events out (``sev:`` of :data:`MILDEST` does not)."""
        return bool(self.severity) and Severity(self.severity) is not MILDEST

    @property
    def hides_progress(self) -> bool:
        return not self.progress and self.type != TASK_PROGRESS

    @property
    def narrows(self) -> bool:
        """Whether some events are left out: a typed filter, or progress folded."""
        return self.active or self.hides_progress

    def describe(self) -> str:
        parts = []
        if self.type:
            parts.append(f"type:{self.type}")
        if self.workflow:
            parts.append(f"wf:{self.workflow}")
        if self.severity:
            parts.append(f"sev:{self.severity}")
        if self.text:
            parts.append(repr(self.text))
        return " ".join(parts)

    def wf_needles(self) -> list[str]:
        """The JSON fragments one of which an event's data must contain for ``wf:``."""
        w = self.wf_id
        return [f'"{w}'] if self.wf_prefix else [f'"{w}"', f'"{w}/']

    def matches(self, ev: Event) -> bool:
        """The same test as :meth:`LogSource.filter_seqs`, for events that arrive live."""
        if self.type and ev.type != self.type:
            return False
        if self.hides_progress and ev.type == TASK_PROGRESS:
            return False
        if self.severity and not severity_of(ev).at_least(self.severity):  # X or worse
            return False
        if self.workflow or self.text:
            blob = json.dumps(ev.data, separators=(",", ":"), ensure_ascii=False)
            if self.workflow and not any(n in blob for n in self.wf_needles()):
                return False
            if self.text:
                hay = f"{ev.type}:{ev.component}:{ev.scope}:{blob}".lower()
                if self.text.lower() not in hay:
                    return False
        return True


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class LogSource:
    """A read-only SQLite connection dedicated to the event log pane."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None:
            if not self.path.exists():
                return None
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            try:
                db.execute("SELECT 1 FROM events LIMIT 1")
            except sqlite3.Error:
                db.close()
                return None
            self._db = db
        return self._db

    def head(self) -> int:
        """The highest committed sequence number (0 when there is no log yet)."""
        with self._lock:
            db = self._conn()
            if db is None:
                return 0
            row = db.execute("SELECT max(seq) FROM events").fetchone()
            return int(row[0] or 0)

    def has_type(self, type_: str) -> bool:
        """Whether the log holds an event of ``type_`` (one indexed lookup)."""
        with self._lock:
            db = self._conn()
            if db is None:
                return False
            return db.execute("SELECT 1 FROM events WHERE type = ? LIMIT 1", (type_,)).fetchone() is not None

    def check(self, flt: LogFilter) -> None:
        """Raise :class:`FilterError` for a ``type:`` neither the engine nor this log knows."""
        if not flt.type or flt.type in known_types() or self.has_type(flt.type):
            return
        close = difflib.get_close_matches(flt.type, sorted(known_types()), n=4, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"known types include {', '.join(sorted(known_types())[:8])} …"
        )
        raise FilterError(f"unknown event type {flt.type!r}: {hint}; the filter was not changed")

    def process(self, agent: str) -> tuple[int, float, dict] | None:
        """The agent host process the local runtime recorded for ``agent`` (pid, create
        time, info), or None: no such row, or a database without real processes."""
        with self._lock:
            db = self._conn()
            if db is None:
                return None
            try:
                row = db.execute("SELECT pid, create_time, info FROM processes WHERE agent = ?", (agent,)).fetchone()
            except sqlite3.Error:
                return None
        if row is None:
            return None
        try:
            info = json.loads(row[2]) if row[2] else {}
        except ValueError:
            info = {}
        return int(row[0]), float(row[1]), info if isinstance(info, dict) else {}

    def read_range(self, lo: int, hi: int) -> list[Event]:
        """Events with ``lo <= seq <= hi``: one indexed range scan."""
        with self._lock:
            db = self._conn()
            if db is None or hi < lo:
                return []
            rows = db.execute(
                "SELECT seq, ts, type, component, scope, actor, data FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (lo, hi),
            ).fetchall()
        return [_event(r) for r in rows]

    def read_seqs(self, seqs: list[int]) -> list[Event]:
        """Events with the given sequence numbers (a filtered window)."""
        out: list[Event] = []
        with self._lock:
            db = self._conn()
            if db is None:
                return out
            for i in range(0, len(seqs), 500):
                chunk = seqs[i : i + 500]
                q = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT seq, ts, type, component, scope, actor, data FROM events WHERE seq IN ({q}) ORDER BY seq",
                    chunk,
                ).fetchall()
                out.extend(_event(r) for r in rows)
        return out

    def progress_folded(self, rows: list[tuple[int, str]]) -> dict[int, int]:
        """For each ``(seq, task)`` of a row that ends a task's run: how many TASK_PROGRESS
        events of that task came after the run started (its last TASK_STARTED, among the
        last ``STARTS_LOOKED_AT`` starts) and before the row. Index range scans only."""
        out: dict[int, int] = {}
        with self._lock:
            db = self._conn()
            if db is None:
                return out
            for seq, task in rows:
                needle = '"task":' + canonical_json(task)
                start = 0
                for s_seq, data in db.execute(
                    "SELECT seq, data FROM events WHERE type = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    (TASK_STARTED, seq, STARTS_LOOKED_AT),
                ):
                    start = s_seq  # the oldest start looked at bounds the count when none is the task's
                    if needle in data:
                        break
                row = db.execute(
                    "SELECT count(*) FROM events WHERE type = ? AND seq > ? AND seq < ? AND instr(data, ?) > 0",
                    (TASK_PROGRESS, start, seq, needle),
                ).fetchone()
                out[seq] = int(row[0])
        return out

    def filter_seqs(self, flt: LogFilter, upto: int) -> array:
        """Sequence numbers of the events that match ``flt``, up to ``upto``."""
        if flt.hides_progress and not (flt.type or flt.workflow or flt.text or flt.by_severity):
            return self._all_but(TASK_PROGRESS, upto)
        where = ["seq <= ?"]
        args: list[object] = [upto]
        if flt.type:
            where.append("type = ?")
            args.append(flt.type)
        if flt.hides_progress:
            where.append("type != ?")
            args.append(TASK_PROGRESS)
        if flt.by_severity:
            cond, sev_args = EVENTS.severity_sql(flt.severity)  # X or worse, the catalogue's own rule
            where.append(cond)
            args += sev_args
        if flt.workflow:
            # instr() is an exact, case-sensitive substring test: the same as ``in`` in matches().
            needles = flt.wf_needles()
            where.append("(" + " OR ".join("instr(data, ?) > 0" for _ in needles) + ")")
            args += needles
        if flt.text:
            where.append("(type || ':' || component || ':' || scope || ':' || data) LIKE ? ESCAPE '\\'")
            args.append(f"%{_like_escape(flt.text)}%")
        out = array("q")
        with self._lock:
            db = self._conn()
            if db is None:
                return out
            cur = db.execute(f"SELECT seq FROM events WHERE {' AND '.join(where)} ORDER BY seq", args)
            while True:
                rows = cur.fetchmany(20000)
                if not rows:
                    break
                out.extend(r[0] for r in rows)
        return out

    def _all_but(self, type_: str, upto: int) -> array:
        """Every seq up to ``upto`` except those of ``type_`` events (the default view:
        progress folded). Read from the (type, seq) index: only the left-out seqs, the
        rest filled in as ranges, when the stored seqs up to ``upto`` run without a gap
        (their count, from the table's smallest index, says so; a sound log's always
        do). Scanning the table for the kept ones read every row of the log (a 1M-event
        log: 0.7 s of CPU at launch): that is left to a log with a gap (a damaged one)."""
        out = array("q")
        with self._lock:
            db = self._conn()
            if db is None:
                return out
            top = db.execute("SELECT max(seq) FROM events WHERE seq <= ?", (upto,)).fetchone()[0] or 0
            first, stored = db.execute(
                "SELECT (SELECT min(seq) FROM events),"
                " (SELECT count(*) FROM events) - (SELECT count(*) FROM events WHERE seq > ?)",
                (top,),
            ).fetchone()
            if top and stored != top - first + 1:
                cur = db.execute("SELECT seq FROM events WHERE seq <= ? AND type != ? ORDER BY seq", (top, type_))
                while rows := cur.fetchmany(20000):
                    out.extend(r[0] for r in rows)
                return out
            cur = db.execute("SELECT seq FROM events WHERE type = ? AND seq <= ? ORDER BY seq", (type_, top))
            nxt = first or 1
            while rows := cur.fetchmany(20000):
                for (s,) in rows:
                    if s > nxt:
                        out.extend(range(nxt, s))
                    nxt = s + 1
        if top >= nxt:
            out.extend(range(nxt, top + 1))
        return out

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _event(r: tuple) -> Event:
    try:
        data = json.loads(r[6])
    except ValueError:
        data = {"raw": r[6]}
    return Event(seq=r[0], ts=r[1], type=r[2], component=r[3], scope=r[4], actor=r[5], data=data)


def recent_matching(source: LogSource, flt: LogFilter, limit: int = 40) -> list[Event]:
    """The last ``limit`` events matching ``flt`` (for the detail screens)."""
    seqs = source.filter_seqs(flt, upto=1 << 62)
    return source.read_seqs(list(seqs[-limit:]))

"""The event log pane: windowed reads from SQLite, an LRU of rendered lines, tailing.

In the manner of Toolong, the pane never holds the log: its virtual height is the
number of events (or of filter matches), and :meth:`render_line` draws only the
rows on screen. A row whose event is not cached draws a placeholder and asks a
worker thread for the visible window plus a margin; the answer comes back as a
call on the UI thread. New events arrive from the link's subscription (once
committed: a subscriber hears of an event after its commit) and, for a database
written by another process, from polling the highest sequence number. Follow mode keeps the end in view; scrolling up
pauses it and reaching the end again resumes it.

Rows read as sentences (:mod:`tui.widgets.log_rows`); the raw event lines are a
toggle away. TASK_PROGRESS events are left out unless asked for (a filter that keeps
every other event), each task row that ends a run counting the progress it folds.
"""

from __future__ import annotations

import time
from array import array
from collections import OrderedDict
from dataclasses import replace
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.events import Event

from ..log_source import LogFilter, LogSource
from ..screens.event import EventScreen
from ..style import color
from .log_rows import folds_progress, raw_row, readable_row
from .lru import LRU
from .titles import BorderText

EVENT_CACHE = 3_000
LINE_CACHE = 1_500
LIVE_KEEP = 8_192


class EventLog(ScrollView, can_focus=True):
    BORDER_TITLE = "Event log"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end,G", "follow_end", "End/follow", show=False),
        Binding("home,g", "scroll_home", "Top", show=False),
        Binding("up", "cursor(-1)", "Cursor up", show=False),
        Binding("down", "cursor(1)", "Cursor down", show=False),
        Binding("enter", "open_event", "Event detail", show=False),
    ]

    class FilterApplied(Message):
        def __init__(self, flt: LogFilter, matches: int, summary: str) -> None:
            super().__init__()
            self.filter = flt
            self.matches = matches
            self.summary = summary
            """What the title says, for the toast: the two always agree."""

    def __init__(
        self, source: LogSource | None = None, *, saved_filters: dict[str, str] | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.source = source
        self.saved_filters = saved_filters or {}
        """The configured ``@name`` filters (``[console.filters]``)."""
        self.head = 0
        self.db_head = 0
        self.follow = True
        self.filter = LogFilter()
        self.matches: array | None = array("q") if self.filter.narrows else None
        """The seqs shown when some are left out (a filter, or progress folded); None: every event."""
        self.raw = False
        """Rows as stored event lines instead of sentences."""
        self.border_text = BorderText(self)
        """The title counts events: changed on most ticks, it repaints only its border row."""
        self.folds: LRU[int, int] = LRU(LINE_CACHE)
        """seq of a task row -> how many progress events it folds."""
        self._folding = False
        self._folds_wanted = False
        self._refold = False
        """Rows asked for their counts while a counting ran: count again when it ends."""
        self.events: LRU[int, Event] = LRU(EVENT_CACHE)
        self.lines: LRU[int, Strip] = LRU(LINE_CACHE)
        self.live: OrderedDict[int, Event] = OrderedDict()
        self._line_key: tuple[int, str, bool] = (0, "", False)
        self._fetching = False
        self._refetch = False
        self._missing = False
        self._filter_gen = 0
        self.unseen = 0
        self.cursor: int | None = None
        """The highlighted row (an index into the log or the filter's matches); None: none."""
        self.last_fetch_ms = 0.0
        self.fetches = 0

    def on_mount(self) -> None:
        source = self.source
        if source is not None:
            # The log already stored (a reopened database): its length, read off the UI loop.
            self.run_worker(lambda: self.app.call_from_thread(self.set_head, source.head()), thread=True)

    # -- size and position ------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.matches) if self.matches is not None else self.head

    def seq_at(self, idx: int) -> int:
        return self.matches[idx] if self.matches is not None else idx + 1

    def _resize_virtual(self) -> None:
        size = Size(self.scrollable_content_region.width, self.count)
        old = self.virtual_size
        if size.width == old.width and size.height > old.height and self.show_vertical_scrollbar:
            # A log that already scrolls grew: nothing else on screen moves, so no layout
            # of the whole screen (assigning virtual_size asks for one); the scrollbar and
            # the rows are updated here.
            self.set_reactive(EventLog.virtual_size, size)
            self._scroll_update(size)
            self.refresh()
        else:
            self.virtual_size = size

    def on_resize(self) -> None:
        self._resize_virtual()
        if self.follow:
            self.scroll_end(animate=False, immediate=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old - 0.5 and new < self.max_scroll_y:
            self.follow = False
        elif new >= self.max_scroll_y and not self.follow:
            self.follow = True
            self.unseen = 0
        self._update_title()

    # -- feeding ----------------------------------------------------------------
    def set_source(self, source: LogSource) -> None:
        self.source = source

    def set_head(self, db_head: int) -> None:
        """The store's highest committed seq (polled): grow the log if it moved."""
        self.db_head = max(self.db_head, db_head)
        if db_head > self.head:
            grew = db_head - self.head
            if self.filter.narrows:
                # Events written by another process: fold them in on the next filter run.
                self._start_filter(self.filter, announce=False)
            self.head = db_head
            self._grown(grew)

    def add_live(self, ev: Event) -> None:
        """An event the link delivered (committed: its subscribers hear of nothing else)."""
        self.live[ev.seq] = ev
        if len(self.live) > LIVE_KEEP:
            self.live.popitem(last=False)
        if ev.seq > self.head:
            self.head = ev.seq
            if self.matches is not None:
                if self.filter.matches(ev):
                    self.matches.append(ev.seq)
                    self.unseen += 0 if self.follow else 1
            else:
                self.unseen += 0 if self.follow else 1

    def tick(self, committed: int = 0) -> None:
        """Apply growth once per UI tick rather than once per event; ``committed`` is the
        store's highest committed seq: what the window reads can serve."""
        stored = committed > self.db_head
        self.db_head = max(self.db_head, committed)
        if stored and self.filter.hides_progress and not self._folds_wanted and not self.folds_ready():
            # Rows newly stored can be counted now (a repaint of the pane no longer asks on every tick).
            self._folds_wanted = True
            self.call_later(self._fetch_folds)
        if self.virtual_size.height != self.count:
            self._grown(0)
        else:
            if self.follow and self.scroll_y < self.max_scroll_y:
                self.scroll_end(animate=False, immediate=True)
            self._update_title()  # the folded count moves while the rows do not

    def _grown(self, n: int) -> None:
        self._resize_virtual()
        if self.follow:
            self.scroll_end(animate=False, immediate=True)
            # Before the first layout the maximum scroll is not known yet.
            self.call_after_refresh(self._keep_end)
        self.refresh()
        self._update_title()

    def _keep_end(self) -> None:
        if self.follow and self.scroll_y < self.max_scroll_y:
            self.scroll_end(animate=False, immediate=True)

    def _update_title(self) -> None:
        if self.follow:
            mode = "following"
        else:
            mode = f"paused ({self.unseen} new, End to follow)" if self.unseen else "paused (End to follow)"
        view = " · raw lines" if self.raw else ""
        title = f"Event log · {self.count_text()}{view} · {mode}"
        subtitle = (
            f"filter {self.filter.describe()} (/ changes, enter on empty clears)"
            if self.filter.active
            else "/ filter · enter: event detail"
        )
        self.border_text.title(title)
        self.border_text.subtitle(subtitle)

    def count_text(self) -> str:
        if self.matches is None:
            return f"{self.count:,} events"
        if not self.filter.active:  # only progress left out
            return f"{self.count:,} events · {max(self.head - self.count, 0):,} progress folded"
        return f"{self.count:,} of {self.head:,}"

    def filter_summary(self) -> str:
        """One sentence for the title and the toast alike."""
        if not self.filter.active:
            return f"filter cleared: {self.count:,} event(s)"
        return f"filter {self.filter.describe()}: {self.count_text()} event(s)"

    # -- filtering --------------------------------------------------------------
    def apply_filter(self, raw: str) -> LogFilter:
        """Parse, check and start ``raw``; raises :class:`FilterError` (and changes nothing)
        for an unknown severity or event type."""
        flt = LogFilter.parse(raw, self.saved_filters, progress=self.filter.progress)
        if self.source is not None:
            self.source.check(flt)
        self._start_filter(flt)
        return flt

    def show_progress(self, show: bool) -> None:
        """Progress events as rows of their own (True), or folded into their task's row."""
        if show != self.filter.progress:
            self._start_filter(replace(self.filter, progress=show), announce=False)

    def toggle_raw(self) -> bool:
        """Rows as stored event lines, or as sentences; returns whether raw."""
        self.raw = not self.raw
        self.lines.clear()
        self.refresh()
        self._update_title()
        return self.raw

    def _start_filter(self, flt: LogFilter, announce: bool = True) -> None:
        self._filter_gen += 1
        gen = self._filter_gen
        self.filter = flt
        if not flt.narrows:
            self.matches = None
            self._after_filter()
            if announce:
                self.post_message(self.FilterApplied(flt, self.count, self.filter_summary()))
            return
        source = self.source
        upto = self.db_head

        def work() -> None:
            found = source.filter_seqs(flt, upto) if source is not None else array("q")
            self.app.call_from_thread(self._filter_done, gen, flt, found, upto, announce)

        self.run_worker(work, thread=True, group="log-filter", exclusive=True, exit_on_error=False)

    def _filter_done(self, gen: int, flt: LogFilter, found: array, upto: int, announce: bool) -> None:
        if gen != self._filter_gen:
            return
        extra = [s for s, e in self.live.items() if s > upto and flt.matches(e)]
        if extra:
            have = set(found[-len(extra) * 2 :]) if found else set()
            found.extend(s for s in extra if s not in have)
        self.matches = found
        self._after_filter()
        if announce:
            self.post_message(self.FilterApplied(flt, len(found), self.filter_summary()))

    def _after_filter(self) -> None:
        self.cursor = None
        self.lines.clear()
        self._resize_virtual()
        self.follow = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True)
        self.refresh()
        self._update_title()

    # -- rendering --------------------------------------------------------------
    def _event(self, seq: int) -> Event | None:
        ev = self.events.get_lru(seq)
        if ev is None:
            ev = self.live.get(seq)
        return ev

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        key = (width, self.app.theme, self.raw)
        if key != self._line_key:
            self.lines.clear()
            self._line_key = key
        idx = int(self.scroll_offset.y) + y
        base = self.rich_style
        if idx >= self.count or idx < 0:
            return Strip.blank(width, base)
        seq = self.seq_at(idx)
        strip = self.lines.get_lru(seq)
        if strip is None:
            ev = self._event(seq)
            if ev is None:
                if not self._missing:
                    self._missing = True
                    self.call_later(self._fetch_window)
                return Strip([Segment(f"{seq:>8} …", base + Style(dim=True))]).adjust_cell_length(width, base)
            strip = self._render_event(ev, width, base)
            self.lines.put(seq, strip)  # a task row without its progress count yet: until _folds_done
        if idx == self.cursor:
            hl = Style(bgcolor=color(self.app, "accent"), color=color(self.app, "background"))
            strip = Strip(list(Segment.apply_style(list(strip), post_style=hl)), strip.cell_length)
        return strip

    def _render_event(self, ev: Event, width: int, base: Style) -> Strip:
        """The row; a task row drawn before its progress count is known is drawn again
        when the count arrives (:meth:`_folds_done` drops it from the cache)."""
        if self.raw:
            return raw_row(self.app, ev, width, base, max(len(str(self.head)), 4))
        folded: int | None = None
        if self.filter.hides_progress and folds_progress(ev) is not None:
            folded = self.folds.get_lru(ev.seq)
            if folded is None and not self._folds_wanted:
                self._folds_wanted = True
                self.call_later(self._fetch_folds)
        return readable_row(self.app, ev, width, base, folded)

    def _fetch_folds(self) -> None:
        """Count the progress folded by the task rows on screen (stored rows only: the
        progress before a stored row is stored too)."""
        self._folds_wanted = False
        if self.source is None:
            return
        if self._folding:  # asked again when the counting under way ends (rows it does not cover)
            self._refold = True
            return
        top = int(self.scroll_offset.y)
        rows: list[tuple[int, str]] = []
        for i in range(top, min(top + max(self.size.height, 1), self.count)):
            ev = self._event(self.seq_at(i))
            task = folds_progress(ev) if ev is not None else None
            if ev is not None and task is not None and ev.seq not in self.folds and ev.seq <= self.db_head:
                rows.append((ev.seq, task))
        if not rows:
            return
        self._folding = True
        source = self.source

        def work() -> None:
            try:
                got = source.progress_folded(rows)
            except Exception:  # noqa: BLE001 - a read error must not kill the pane
                got = {}
            self.app.call_from_thread(self._folds_done, [seq for seq, _ in rows], got)

        self.run_worker(work, thread=True, group="log-folds", exit_on_error=False)

    def _folds_done(self, asked: list[int], got: dict[int, int]) -> None:
        """The counts of the rows ``asked``: a row cached before its count is dropped from
        the cache whether its count came (drawn again with it) or not (a failed read: drawn
        and asked again on the pane's next repaint, not kept without it)."""
        self._folding = False
        if self._refold:
            self._refold = False
            self.call_later(self._fetch_folds)
        for seq in asked:
            n = got.get(seq)
            if n is not None:
                self.folds.put(seq, n)
            self.lines.pop(seq, None)
        if got:
            self.refresh()

    def folds_ready(self) -> bool:
        """Whether every task row on screen has its progress count (tests)."""
        top = int(self.scroll_offset.y)
        for i in range(top, min(top + self.size.height, self.count)):
            ev = self._event(self.seq_at(i))
            if ev is None or (folds_progress(ev) is not None and ev.seq not in self.folds):
                return False
        return True

    # -- fetching ---------------------------------------------------------------
    def _fetch_window(self) -> None:
        self._missing = False
        if self.source is None:
            return
        if self._fetching:
            self._refetch = True
            return
        h = max(self.size.height, 1)
        top = int(self.scroll_offset.y)
        lo_i, hi_i = max(0, top - h * 2), min(self.count - 1, top + h * 3)
        if hi_i < lo_i:
            return
        want = [self.seq_at(i) for i in range(lo_i, hi_i + 1)]
        missing = [s for s in want if s not in self.events and s not in self.live and s <= self.db_head]
        if not missing:
            return
        self._fetching = True
        source = self.source
        t0 = time.perf_counter()
        contiguous = self.matches is None

        def work() -> None:
            try:
                evs = source.read_range(missing[0], missing[-1]) if contiguous else source.read_seqs(missing)
            except Exception:  # noqa: BLE001 - a read error must not kill the pane
                evs = []
            self.app.call_from_thread(self._fetched, evs, t0)

        self.run_worker(work, thread=True, group="log-fetch", exit_on_error=False)

    def _fetched(self, evs: list[Event], t0: float) -> None:
        self._fetching = False
        for ev in evs:
            self.events.put(ev.seq, ev)
        self.fetches += 1
        self.last_fetch_ms = (time.perf_counter() - t0) * 1000
        self.refresh()
        if self._refetch:
            self._refetch = False
            self.call_later(self._fetch_window)

    def visible_ready(self) -> bool:
        """Whether every row on screen has its event (for tests and the benchmark)."""
        top = int(self.scroll_offset.y)
        return all(self._event(self.seq_at(i)) is not None for i in range(top, min(top + self.size.height, self.count)))

    # -- cursor and event detail -------------------------------------------------
    def action_cursor(self, delta: int) -> None:
        """Move the highlighted row; the first press lands on the last row in view."""
        n = self.count
        if n == 0:
            return
        top = int(self.scroll_offset.y)
        h = max(self.scrollable_content_region.height, 1)
        if self.cursor is None:
            self.cursor = min(top + h - 1, n - 1) + (delta if delta < 0 else 0)
        else:
            self.cursor += delta
        self.cursor = max(0, min(self.cursor, n - 1))
        if self.cursor < top:
            self.follow = False
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + h:
            self.scroll_to(y=self.cursor - h + 1, animate=False, immediate=True)
        self.refresh()

    def on_click(self, event) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and 0 <= int(self.scroll_offset.y) + offset.y < self.count:
            self.cursor = int(self.scroll_offset.y) + offset.y
            self.refresh()

    def event_at_cursor(self) -> Event | None:
        if self.count == 0:
            return None
        idx = self.cursor
        if idx is None:
            idx = min(int(self.scroll_offset.y) + max(self.scrollable_content_region.height, 1) - 1, self.count - 1)
        return self._event(self.seq_at(idx))

    def action_open_event(self) -> None:
        ev = self.event_at_cursor()
        if ev is None:
            self.notify("that row is still loading; try again", severity="warning", timeout=3)
            return
        self.app.push_screen(EventScreen(ev))

    # -- actions ----------------------------------------------------------------
    def action_follow_end(self) -> None:
        self.follow = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True)
        self._update_title()

    def toggle_follow(self) -> bool:
        if self.follow:
            self.follow = False
        else:
            self.action_follow_end()
        self._update_title()
        return self.follow

"""The cyclic garbage collector's policy for an engine and a console, declared in one place.

- While many long-lived objects are built at once (a projection loaded, a big workflow
  created) the collector is held off (:func:`gc_paused`): none of them is garbage, and
  each young pass would walk them all again (superlinear).
- Once built, if they are many (:data:`BULK_TASKS`), they are frozen (``gc.freeze``):
  out of the collector's reach, so no later pass walks them; reference counting still
  frees them (a finished workflow's tasks go when it is archived).
- Before an engine opens, what lives already is frozen; once open, the thresholds are
  :data:`GC_THRESHOLDS`. A command-line verb freezes its modules and input before that
  without collecting them first (:func:`freeze_loaded`).
- An engine's parts refer to each other, and a frozen cycle is never collected: an
  engine that a freeze may hold thaws the heap when it closes (``gc.unfreeze``), else
  every such engine would stay in memory with all it held. An engine no freeze holds
  (the usual small one) is collected as any garbage, at no cost to its close.
- A freeze also holds the cycles alive at that moment and dropped later: a long-running
  engine's maintenance thaws, collects and freezes again once far more tasks were frozen
  than now live (:meth:`Collector.maintain`), so those stay bounded by what lives.
- A command-line process about to exit freezes everything (:func:`before_exit`): the
  interpreter's last collection then walks nothing.
- A console draws frames: its young passes are smaller (:func:`for_frames`), and none
  runs inside a frame (the frame is drawn in :func:`gc_paused`, ``tui/screens/main.py``).

Light to import (the standard library only): a console imports it before the engine.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLDS = (50_000, 20, 100)
"""Collector thresholds once an engine is open: a generation-0 pass every 50,000
allocations rather than 700 (an engine allocates many short-lived objects per event,
and each young pass also walks the survivors), and old generations collected less."""

BULK_TASKS = 5_000
"""A workflow of at least this many tasks is frozen once created: a task is about ten
objects the collector tracks, so it builds more than one young generation (50,000,
:data:`GC_THRESHOLDS`), whose first pass would walk them all (0.2 s CPU at 100,000
tasks, 5 % of creating and running them), and every full pass after it again."""


CONSOLE_GEN0 = 10_000
"""Allocations between two young passes in a console process: a young pass of 50,000
objects took ~30 ms CPU (a frame lost) where one of 10,000 takes ~5 (bench/frames.py)."""


def for_frames() -> None:
    """A console drawing frames once its link is open (opening an engine set
    :data:`GC_THRESHOLDS`, for folding big workflows): young passes of at most
    :data:`CONSOLE_GEN0` allocations, the older generations' thresholds kept."""
    g0, g1, g2 = gc.get_threshold()
    gc.set_threshold(min(g0, CONSOLE_GEN0), g1, g2)


def before_exit() -> None:
    """Just before a command-line process exits (``python -m opsdeck``, the ``opsdeck``
    script; never in a process that goes on): everything is frozen, so the collection the
    interpreter runs while it shuts down walks nothing. It walked every object the process
    had made (modules, models, an engine's state): 0.35-0.6 s of the exit measured on this
    machine under load 9-12 after importing a headless run's modules, 0.05-0.1 s frozen.
    What it would have freed is cyclic garbage, whose memory the exit returns anyway; the
    atexit handlers and the flushing of the standard streams still run."""
    gc.freeze()


def hold_for_start() -> None:
    """A command-line verb that freezes what it loads (:func:`freeze_loaded`), as soon as
    its command line is read: the collector is held off until then. What it builds
    meanwhile (modules, models, its config and input) lives as long as the process and is
    frozen as it is, the few cycles the imports dropped included, so every pass over it
    was wasted: 84 young and 7 middle passes, about 15 ms of CPU, before a headless run of
    one task froze it. :func:`freeze_loaded` enables the collector again, and
    :func:`end_start_hold` where the verb goes another way (an error, the console)."""
    gc.disable()


def end_start_hold() -> None:
    """The collector enabled again after :func:`hold_for_start`, with nothing frozen."""
    gc.enable()


def freeze_loaded() -> None:
    """A command-line verb that has imported its modules and read its input, about to open
    its engine: what lives now lives as long as the process, so it is frozen as it is,
    without the full collection :func:`settle_before_open` runs first (14-16 ms of CPU over
    a headless run's modules with a workflow file of 600 tasks read); that collection then
    walks only what was made since. The few cycles the imports dropped stay in memory. The
    collector, held off since the verb's start (:func:`hold_for_start`), runs again."""
    _freeze()
    gc.enable()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off the cyclic GC while building many objects that are not garbage."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


REFREEZE_TASKS = 4 * BULK_TASKS
"""Tasks (and loaded records) frozen since the heap was last collected whole before
maintenance collects it again, and only once they are over twice the records live then:
a whole pass walks what lives (about 35 ms CPU for 200,000 objects, 0.3 s for 2M, measured
here), so it costs at most half a pass per task frozen, and none while what was frozen lives."""


class _Freezes:
    """How many times this policy froze the heap, and the tasks it froze since the heap was
    last collected whole (one count per process, as the heap)."""

    count = 0
    tasks = 0


def _freeze(tasks: int = 0) -> None:
    gc.freeze()
    _Freezes.count += 1
    _Freezes.tasks += tasks


def settle_before_open() -> None:
    """Before an engine is opened: what lives already (modules, earlier engines' survivors)
    is frozen after one full collection, so no later pass walks it; the engine opened
    next is not, and once closed its cycles are collected as any garbage. The
    thresholds become :data:`GC_THRESHOLDS` for the load and after it."""
    gc.collect()
    _freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Collector:
    """One engine's use of the collector; thaws the heap when it closes if a freeze
    since it was made may hold it."""

    def __init__(self) -> None:
        self.born = _Freezes.count
        """The freeze count when the engine was made: a later freeze froze it."""

    def loaded(self, records: int) -> None:
        """After the projection is loaded: one of at least :data:`BULK_TASKS` records
        (live tasks and finished workflows) lives as long as the engine, so it is
        frozen, after one full collection so that no garbage is frozen with it."""
        if records >= BULK_TASKS:
            gc.collect()
            _freeze(records)

    @contextmanager
    def building(self, tasks: int) -> Iterator[None]:
        """Around creating a workflow of ``tasks`` tasks: the collector held off; from
        :data:`BULK_TASKS` tasks, what was built is frozen once it is built (not when
        creating it failed), after a full collection before it, so that no garbage
        is frozen with it."""
        bulk = tasks >= BULK_TASKS
        if bulk:
            gc.collect()
        with gc_paused():
            yield
            if bulk:
                _freeze(tasks)

    def maintain(self, records: int) -> None:
        """At an engine's maintenance, ``records`` (live tasks and finished workflows) alive:
        once more than :data:`REFREEZE_TASKS` tasks, and over twice ``records``, were frozen
        since the heap was last collected whole, the heap is thawed, collected and frozen
        again, freeing the cycles the freezes held past their use."""
        if _Freezes.tasks < REFREEZE_TASKS or _Freezes.tasks <= 2 * records:
            return
        gc.unfreeze()
        gc.collect()
        _freeze()
        _Freezes.tasks = 0

    @property
    def frozen(self) -> bool:
        """Whether a freeze since the engine was made may hold it (and all it refers to)."""
        return _Freezes.count > self.born

    def thaw(self) -> None:
        """When the engine closes, if it may be frozen: the frozen heap goes back to the
        oldest generation, whose next full pass (the next open's) collects the engine.
        Everything frozen is thawed (other engines' too: only a cost, a full pass walks
        it once more)."""
        if self.frozen:
            gc.unfreeze()
            self.born = _Freezes.count
            _Freezes.tasks = 0

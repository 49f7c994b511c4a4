"""The console's main screen: its frames run with the garbage collector paused.

A young collection that fell inside a frame (the frame's own allocations crossing the
threshold) added 4-7 ms of CPU to it (bench/frames.py, under the live demo): the
longest frames were a list's rows plus a collection. The collector is paused while the
screen draws a frame and resumed after it: a collection the frame made due runs at the
next allocation after it, between frames.

Why a private method: Textual (pinned in pyproject.toml) draws a screen's frame in
``Screen._on_timer_update``, the callback of the screen's update timer (layout, the
dirty widgets' render, the compositor's update and its write), and offers no public
hook around a frame. Its one public collector switch, ``App.PAUSE_GC_ON_SCROLL``,
pauses the collector only while a scroll animation runs, not for the frames the
console's refresh timer and its live events cause. So the frame is wrapped here, in
this one place; an upgrade that renames the method or stops drawing through it would
leave this override silently unused, and
``tests/test_console_frame_cost.py::test_the_main_screen_draws_its_frames_with_the_collector_paused``
fails then: it asserts that a frame's render runs inside this override, collector
paused.
"""

from __future__ import annotations

from textual.screen import Screen

from core.collector import gc_paused


class MainScreen(Screen[None]):
    """The default screen (the panes, the log, the command line), drawn without collections."""

    def _on_timer_update(self) -> None:
        """Textual's frame (see the module's docstring), with the collector paused."""
        with gc_paused():
            super()._on_timer_update()

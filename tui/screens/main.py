"""The console's main screen: its frames run with the garbage collector paused.

A young collection that fell inside a frame (the frame's own allocations crossing the
threshold) added 4-7 ms of CPU to it (bench/frames.py, under the live demo): the
longest frames were a list's rows plus a collection. The collector is paused while the
screen draws a frame and resumed after it: a collection the frame made due runs at the
next allocation after it, between frames.
"""

from __future__ import annotations

import gc

from textual.screen import Screen


class MainScreen(Screen[None]):
    """The default screen (the panes, the log, the command line), drawn without collections."""

    def _on_timer_update(self) -> None:
        enabled = gc.isenabled()
        gc.disable()
        try:
            super()._on_timer_update()
        finally:
            if enabled:
                gc.enable()

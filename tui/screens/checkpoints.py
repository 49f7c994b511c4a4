"""Checkpoints: choose one and roll back to it (after a confirmation whose default is Cancel)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from core import timefmt

from ..console_host import ConsoleApp
from ..style import color
from ..widgets.footer import FittedFooter


class CheckpointsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "rollback", "Roll back to highlighted"),
        Binding("c", "app.checkpoint", "New checkpoint"),
    ]
    app = getters.app(ConsoleApp)

    def compose(self) -> ComposeResult:
        yield Static(" Checkpoints — enter rolls back to the highlighted one ", id="detail-title")
        yield OptionList(id="checkpoint-list")
        yield Static(id="checkpoint-info", markup=False)
        yield FittedFooter()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(1.0, self.reload)
        self.query_one(OptionList).focus()

    def reload(self) -> None:
        eng = self.app.link
        if eng is None:
            return
        ol = self.query_one(OptionList)
        cps = sorted(eng.state.checkpoints.values(), key=lambda x: x.id, reverse=True)
        ids = [str(cp.id) for cp in cps]
        if [o.id for o in ol.options] == ids:
            return
        keep = ol.highlighted_option.id if ol.highlighted_option else None
        app = self.app
        opts = []
        for cp in cps:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append(f"#{cp.id:<4}", style="bold")
            t.append(f" seq {cp.seq:<8} {timefmt.clock(cp.ts)}  ", style=color(app, "foreground-muted"))
            t.append(f"{cp.kind:<15}", style=color(app, "secondary"))
            t.append(f" {cp.workflow or 'all workflows':<24} {cp.label}")
            opts.append(Option(t, id=str(cp.id)))
        ol.set_options(opts)
        if not opts:
            ol.add_option(
                Option(
                    Text("no checkpoints yet — press c to take one", style=color(app, "foreground-muted")),
                    disabled=True,
                )
            )
        elif keep in ids:
            ol.highlighted = ids.index(keep)
        else:
            ol.highlighted = 0
        self.query_one("#checkpoint-info", Static).update(f" {len(cps)} checkpoint(s); state seq {eng.state.seq}")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.app.request_rollback(int(event.option.id))

    def action_rollback(self) -> None:
        opt = self.query_one(OptionList).highlighted_option
        if opt is not None and opt.id:
            self.app.request_rollback(int(opt.id))

    def action_back(self) -> None:
        self.app.pop_screen()

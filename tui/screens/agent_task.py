"""The agent screen's view of its task's process: waiting for input, its live terminal,
its worktree's diff, and the keys that reach it.

Everything goes through slash commands (``/coordination-hub screen|diff|send-input``),
so an attached console or the browser sees the same as the hosting one. Attached,
each key is written to the task's terminal (``ctrl+]`` detaches, as telnet's escape).

The terminal is fetched again only when it may have changed: an event about the task
(its output, an input wait, input sent to it) marks it due, and while attached (keys
go to it, their echo is not an event) it is fetched on every tick. A task that prints
nothing costs no command.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.text import Text

from core.models import Task

if TYPE_CHECKING:
    from core.host.link import Link

DETACH_KEY = "ctrl+right_square_bracket"
DIFF_EVERY_S = 5.0
KEY_BYTES: dict[str, str] = {
    "enter": "\r",
    "tab": "\t",
    "backspace": "\x7f",
    "escape": "\x1b",
    "up": "\x1b[A",
    "down": "\x1b[B",
    "right": "\x1b[C",
    "left": "\x1b[D",
    "home": "\x1b[H",
    "end": "\x1b[F",
    "delete": "\x1b[3~",
    "ctrl+c": "\x03",
    "ctrl+d": "\x04",
}


def input_command(task: str, text: str, newline: bool = True) -> str:
    """The slash command writing ``text`` to the task (JSON, so any text survives quoting)."""
    payload = json.dumps({"text": text, "newline": newline}, ensure_ascii=False)
    return f"/coordination-hub send-input {task} {shlex.quote(payload)}"


def key_bytes(key: str, character: str | None) -> str | None:
    """What a key press types into a terminal (None: nothing it can type)."""
    if key in KEY_BYTES:
        return KEY_BYTES[key]
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return chr(ord(key[5]) - ord("a") + 1)
    return character if character and character.isprintable() else None


@dataclass
class TaskView:
    """What the screen last fetched about one task's process."""

    task: str | None = None
    screen: list[str] = field(default_factory=list)
    screen_note: str = ""
    diff_stat: str = ""
    diff_note: str = ""
    diff_at: float = -1e9
    attached: bool = False
    heard_n: int = 1
    """Events heard about the task (and keys sent to it): each may have changed its terminal."""
    fetched_n: int = 0
    """``heard_n`` as it was when the terminal shown was asked for."""
    attempt: int = 0

    def heard(self, task: str | None = None) -> None:
        """An event about ``task`` (None: this view's): its terminal is due for a fetch."""
        if task is None or task == self.task:
            self.heard_n += 1

    def wants_screen(self, t: Task) -> bool:
        """Whether to fetch the task's terminal: only a tty task's is shown, and only when
        it may have changed (another task or run, an event about it, keys going to it)."""
        fresh = t.id != self.task or t.attempts != self.attempt
        return t.tty and t.attempts > 0 and (fresh or self.heard_n != self.fetched_n or self.attached)

    def due(self, t: Task, now: float) -> bool:
        """Whether a tick has anything to fetch (the terminal, or the worktree's diff)."""
        return self.wants_screen(t) or bool(t.worktree and now - self.diff_at >= DIFF_EVERY_S)

    async def fetch(self, link: Link, t: Task, now: float) -> bool:
        """Fetch what is due; whether anything shown changed."""
        changed = False
        if t.id != self.task or t.attempts != self.attempt:  # another task or run: nothing fetched is about it
            if t.id != self.task:
                self.diff_stat, self.diff_note, self.diff_at, self.attached = "", "", -1e9, False
            self.task, self.attempt, self.screen, self.screen_note = t.id, t.attempts, [], ""
            self.heard_n, self.fetched_n, changed = self.heard_n + 1, 0, True
        if self.wants_screen(t):
            asked = self.heard_n  # an event heard while the command runs leaves it due
            res = await link.send(f"/coordination-hub screen {t.id}")
            r: dict[str, Any] = res.get("result") or {}
            if res.get("status") == "success":
                lines, note = list(r.get("lines") or []), ""
            else:
                lines, note = [], str((res.get("error") or {}).get("message") or "")
            self.fetched_n = asked
            changed = changed or (lines, note) != (self.screen, self.screen_note)
            self.screen, self.screen_note = lines, note
        if t.worktree and now - self.diff_at >= DIFF_EVERY_S:
            self.diff_at = now
            res = await link.send(f"/coordination-hub diff {t.id}")
            r = res.get("result") or {}
            ok = res.get("status") == "success"
            stat = str(r.get("stat") or "") if ok else ""
            note = "" if ok else str((res.get("error") or {}).get("message") or "")
            changed = changed or (stat, note) != (self.diff_stat, self.diff_note)
            self.diff_stat, self.diff_note = stat, note
        return changed


def task_blocks(t: Task, view: TaskView, c: Any) -> list[RenderableType]:
    """The task's waiting state, its terminal and its worktree, as the agent screen shows them."""
    head = f"bold {c('secondary')}"
    out: list[RenderableType] = []
    if t.awaiting_input:
        line = Text()
        line.append("⌨ waiting for input", style=f"bold {c('warning')}")
        line.append(f"  {t.waiting_input}", style=c("warning"))
        line.append("   s: send a line" + ("   enter: attach" if t.tty else ""), style=c("foreground-muted"))
        out += [line, Text("")]
    if t.tty or view.attached:
        state = "attached: keys go to the task, ctrl+] detaches" if view.attached else "enter attaches"
        out.append(Text(f"Terminal of {t.id} ({state})", style=head))
        if view.screen:
            last = max((i for i, ln in enumerate(view.screen) if ln.strip()), default=0)
            body = "\n".join(view.screen[: last + 1])
            out.append(Text(body, style=c("foreground") if view.attached else c("foreground-muted"), no_wrap=True))
        else:
            out.append(Text(f"  {view.screen_note or '(nothing drawn yet)'}", style=c("foreground-muted")))
        out.append(Text(""))
    if t.worktree or t.branch:
        out.append(Text(f"Worktree {t.worktree or '(removed)'} on {t.branch or '—'}", style=head))
        stat = view.diff_stat or view.diff_note or "(no changes)"
        out.append(Text("  " + stat.replace("\n", "\n  "), style=c("foreground-muted"), no_wrap=True))
        out.append(
            Text(
                f"  :/coordination-hub diff {t.id}   merge {t.id}   discard {t.id}",
                style=c("foreground-muted"),
            )
        )
        out.append(Text(""))
    return out

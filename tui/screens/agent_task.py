"""The agent screen's view of its task's process: waiting for input, its live terminal,
its worktree's diff, and the keys that reach it.

Everything goes through slash commands (``/coordination-hub screen|diff|send-input``),
so an attached console or the browser sees the same as the hosting one. Attached,
each key is written to the task's terminal (``ctrl+]`` detaches, as telnet's escape).
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

    async def fetch(self, link: Link, t: Task, now: float) -> None:
        if t.id != self.task:  # another task on this agent: nothing fetched so far is about it
            self.task, self.screen, self.screen_note = t.id, [], ""
            self.diff_stat, self.diff_note, self.diff_at, self.attached = "", "", -1e9, False
        if t.attempts:
            res = await link.send(f"/coordination-hub screen {t.id}")
            r: dict[str, Any] = res.get("result") or {}
            if res.get("status") == "success":
                self.screen, self.screen_note = list(r.get("lines") or []), ""
            else:
                self.screen, self.screen_note = [], str((res.get("error") or {}).get("message") or "")
        if t.worktree and now - self.diff_at >= DIFF_EVERY_S:
            self.diff_at = now
            res = await link.send(f"/coordination-hub diff {t.id}")
            r = res.get("result") or {}
            ok = res.get("status") == "success"
            self.diff_stat = str(r.get("stat") or "") if ok else ""
            self.diff_note = "" if ok else str((res.get("error") or {}).get("message") or "")


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

"""What the headless verbs print, in one place: the contract scripts rely on.

stdout carries the output only: event lines (or, with ``--json``, one JSON object per
line for streams and one object for a response or report). Errors, progress notes and
hints go to stderr. A response that is an error prints its code and message (and its
suggestions) on stderr; with ``--json`` the whole response object is still the one
thing on stdout, so it always parses.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.events import Event

BAD_ANSWER = 3
"""The exit code when a live host answered something this client cannot read (not HTTP,
over a limit, not the JSON it should be): the host is not known to be gone (README,
headless output contract)."""
KEEP_DETAILS = 6
"""Detail fields shown with a text error; longer lists (every known operation) are summarised."""
HELP_LISTS = frozenset({"UNKNOWN_COMPONENT", "UNKNOWN_OPERATION"})
"""Errors whose known names `opsdeck help` lists (components, operations); a workflow's,
pool's or checkpoint's are listed by the error's own suggestions."""


def event_record(ev: Event) -> dict[str, Any]:
    """An event as one JSON object: seq, ts, type, component, scope, actor, severity, data."""
    from core.event_types import severity_of  # the event catalogue: not for printing a response

    return {
        "seq": ev.seq,
        "ts": ev.ts,
        "type": ev.type,
        "component": ev.component,
        "scope": ev.scope,
        "actor": ev.actor,
        "severity": severity_of(ev),
        "data": ev.data,
    }


def json_line(obj: Any) -> str:
    return json.dumps(obj, default=str, ensure_ascii=False)


class LinePrinter:
    """Prints events as they happen (event lines, or JSON objects with ``as_json``);
    stops quietly when the reader goes away."""

    def __init__(self, as_json: bool = False) -> None:
        self.closed = False
        self.as_json = as_json

    def write(self, line: str) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(line + "\n")
        except BrokenPipeError:
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())

    def __call__(self, ev: Event) -> None:
        self.write(json_line(event_record(ev)) if self.as_json else ev.line())


def error_text(resp: dict[str, Any]) -> str:
    """An error response for stderr: code and message, short details, suggestions."""
    err = resp.get("error") or {}
    lines = [f"opsdeck: error {err.get('code', 'ERROR')}: {err.get('message', '')}"]
    details = dict(err.get("details") or {})
    details.pop("suggestions", None)
    known = details.pop("known", None)
    small = {k: v for k, v in details.items() if not isinstance(v, (list, dict)) or len(v) <= KEEP_DETAILS}
    if small:
        lines.append("  " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in small.items()))
    if isinstance(known, list):
        if err.get("code") in HELP_LISTS:
            lines.append(f"  ({len(known)} known; `opsdeck help` lists them)")
        elif known and len(known) <= KEEP_DETAILS:
            lines.append(f"  (known: {', '.join(str(k) for k in known)})")
        else:
            lines.append(f"  ({len(known)} known)")
    for s in resp.get("recovery_suggestions") or []:
        lines.append(f"  try: {s}")
    return "\n".join(lines) + "\n"


def success_text(resp: dict[str, Any]) -> str:
    """A success for a terminal: status line, summary, next steps, the result as JSON."""
    res = dict(resp.get("result") or {})
    summary = res.pop("summary", "")
    lines = [f"success {resp['operation']}" + (f" [{resp['workflow_id']}]" if resp.get("workflow_id") else "")]
    if summary:
        lines.append(str(summary))
    if resp.get("next_steps"):
        lines.append("next: " + " | ".join(resp["next_steps"]))
    lines.append(json.dumps(res, indent=2, default=str))
    return "\n".join(lines) + "\n"


def print_response(resp: dict[str, Any], as_json: bool) -> int:
    """Print a command's response by the contract; exit 0 on success, 1 on an error."""
    ok = resp.get("status") == "success"
    if as_json:
        sys.stdout.write(json.dumps(resp, indent=2, default=str) + "\n")
    elif ok:
        sys.stdout.write(success_text(resp))
    if not ok:
        sys.stdout.flush()
        sys.stderr.write(error_text(resp))
    return 0 if ok else 1

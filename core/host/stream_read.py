"""The client's reading of a host's event stream: the whole server-sent-event blocks of
its bytes, each event decoded, and whether the host's process is still there (a
stream's silence or break is told apart from a host gone)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Event loads with the first event decoded (the event catalogue): a client used
    # only for commands does not load it.
    from ..events import Event


def event_from_json(obj: dict[str, Any]) -> Event:
    """The event ``obj`` (a line of the stream) holds: KeyError, TypeError or ValueError
    for a field missing or of the wrong type."""
    from ..events import Event

    ev = Event(
        seq=int(obj["seq"]),
        ts=float(obj["ts"]),
        type=obj["type"],
        component=obj["component"],
        scope=obj["scope"],
        data=obj.get("data") or {},
        actor=obj.get("actor") or "engine",
    )
    if not all(isinstance(v, str) for v in (ev.type, ev.component, ev.scope, ev.actor)) or not isinstance(
        ev.data, dict
    ):
        raise TypeError("type, component, scope and actor are text, data an object")
    return ev


def process_state(pid: int | None) -> str | None:
    """``"gone"`` (no such process, or exited and not reaped), ``"stopped"`` (SIGSTOP,
    SIGTSTP, a debugger) or None (running, or not ours to inspect)."""
    if not pid:
        return None
    import psutil  # only when a host is slow to answer

    try:
        st = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:
        return None
    if st in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
        return "stopped"
    if st in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return "gone"
    return None


class Blocks:
    """The event stream's bytes as they come, cut at its last blank line: the whole
    server-sent-event blocks so far. An event longer than a read is held in pieces and
    joined once it is whole: appending each read to one buffer and searching all of it
    costs time quadratic in an event's size (a 10,000-task workflow's creation is 1.1 MB)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.pending = 0
        """Bytes held of an event not yet whole."""

    def feed(self, data: bytes) -> bytes:
        """The whole blocks ``data`` completes, without their last blank line (b"" for none)."""
        seam = self._parts[-1][-1:] + data if self._parts else data  # a blank line may span two reads
        end = seam.rfind(b"\n\n")
        if end < 0:
            if data:
                self._parts.append(data)
                self.pending += len(data)
            return b""
        buf = b"".join([*self._parts, data])
        end += len(buf) - len(seam)
        rest = buf[end + 2 :]
        self._parts = [rest] if rest else []
        self.pending = len(rest)
        return buf[:end]

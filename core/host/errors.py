"""What goes wrong between a host and its clients, in words a user can act on."""

from __future__ import annotations

STREAM = "the event stream"
"""The request an unreadable answer of the event stream is said to answer (:class:`HostBadAnswer`)."""


def the_host(pid: int | None) -> str:
    """The host in words: "the host (pid N)", or "the host" when its pid is not known."""
    return f"the host (pid {pid})" if pid else "the host"


class HostError(Exception):
    """A host that cannot be opened (missing database, bad path); nothing was changed."""


class HostGone(Exception):
    """The host stopped answering: its process is gone or it closed the endpoint."""

    def __init__(self, pid: int | None, reason: str = "") -> None:
        self.pid = pid
        self.reason = reason
        super().__init__(f"{the_host(pid)} is gone" + (f": {reason}" if reason else ""))


class HostUnresponsive(HostGone):
    """The host's process is there but does not answer (stopped, or busy beyond a timeout)."""

    def __init__(self, pid: int | None, state: str, message: str) -> None:
        self.state = state
        Exception.__init__(self, message)
        self.pid = pid
        self.reason = message


class HostBadAnswer(HostGone):
    """The host answered something a client cannot read: not HTTP/1.1, over a size
    limit, or not the JSON it should be. Nothing more is read from that answer; the host
    is not known to be gone (a caller that cannot go on without it may treat it so)."""

    def __init__(self, pid: int | None, reason: str, request: str = "") -> None:
        self.request = request
        """Which answer: the request it answered (``GET /v1/health``, ``the event stream``)."""
        said = f" ({request})" if request else ""
        Exception.__init__(self, f"{the_host(pid)} answered something this client cannot read{said}: {reason}")
        self.pid = pid
        self.reason = reason


class UndecodableEvent(HostBadAnswer):
    """The host sent an event of its stream that a client cannot decode (not JSON, no
    seq, not an event, over the size limit). The host is not known to be gone; following
    cannot go past that event, so the stream is not read on."""

    def __init__(self, pid: int | None, after: int, seq: int | None, why: str) -> None:
        self.after = after
        """The seq of the last event decoded before it (the stream's start if none)."""
        self.seq = seq
        """Its own seq, when that much could be read."""
        self.why = why
        self.where = f"seq {seq}" if seq is not None else f"the event after seq {after}"
        super().__init__(pid, f"an event of the stream ({self.where}) cannot be decoded: {why}", STREAM)

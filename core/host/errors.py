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


def no_endpoint(pid: int | None, db: object, waited: float, command: str) -> HostUnresponsive:
    """A live holder of ``db``'s lease (a host) that opened no endpoint within ``waited``
    seconds: it runs (its lock is held), so it is not gone; it cannot be reached."""
    return HostUnresponsive(
        pid,
        "unresponsive",
        f"{the_host(pid)} holds {db} but opened no endpoint within {waited:g}s ({command}): "
        "it is running and cannot be reached",
    )


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


class HostRefused(Exception):
    """The host answered a request with an error status of its own: it is there, and
    said no (or failed). Neither gone nor an unreadable answer: its words are given."""

    def __init__(
        self, pid: int | None, request: str, status: int, code: str, message: str, details: dict[str, object]
    ) -> None:
        self.pid = pid
        self.request = request
        self.status = status
        self.code = code
        """The host's error code (``UNAUTHORIZED``, ``TOO_MANY_FOLLOWERS``), or "" when it gave none."""
        self.message = message
        self.details = details
        super().__init__(self.sentence())

    @property
    def said(self) -> str:
        """The status, the code and the host's words: ``503 TOO_MANY_FOLLOWERS: ...``."""
        code = f" {self.code}" if self.code else ""
        return f"{self.status}{code}: {self.message}" if self.message else f"{self.status}{code}"

    def sentence(self) -> str:
        return f"{the_host(self.pid)} refused {self.request} ({self.said})"


class TokenRefused(HostRefused):
    """401: the host does not take the token sent (or none was sent); asking again with
    the same token is answered the same, so nothing is asked again."""

    def sentence(self) -> str:
        return f"{the_host(self.pid)} refused the token for {self.request} ({self.said})"


class HostBusy(HostRefused):
    """503: the host is at its limit of event followers or of open connections: for now;
    a follower asks again later."""

    @property
    def short(self) -> str:
        """``host busy (256 followers)``: what it is at the limit of, in a few words."""
        n = self.details.get("followers", self.details.get("limit"))
        if not isinstance(n, int):
            return "host busy"
        what = {"TOO_MANY_FOLLOWERS": "follower", "TOO_MANY_CONNECTIONS": "connection"}.get(self.code)
        return f"host busy ({n} {what}{'' if n == 1 else 's'})" if what else "host busy"

    def sentence(self) -> str:
        return f"{the_host(self.pid)} is busy: it refused {self.request} ({self.said})"


class HostFailed(HostRefused):
    """5xx other than 503: the host's own error while answering the request."""

    def sentence(self) -> str:
        return f"{the_host(self.pid)} failed to answer {self.request}: its error {self.said}"


def refused(pid: int | None, request: str, status: int, text: str, shown: int) -> HostRefused:
    """The host's refusal of ``request`` with ``status``: its JSON error's code, message and
    details when the answer ``text`` holds one, else the text itself (at most ``shown`` characters)."""
    import json

    code, message = "", text.strip()[:shown]
    details: dict[str, object] = {}
    try:
        err = json.loads(text).get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict):
        code = str(err.get("code") or "")[:80]
        message = str(err.get("message") or "")[:shown]
        given = err.get("details")
        details = given if isinstance(given, dict) else {}
    kind = {401: TokenRefused, 503: HostBusy}.get(status, HostFailed if status >= 500 else HostRefused)
    return kind(pid, request, status, code, message, details)

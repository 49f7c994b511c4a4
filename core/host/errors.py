"""What goes wrong between a host and its clients, in words a user can act on."""

from __future__ import annotations


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
    limit, or not the JSON it should be. Handled as the host gone: nothing more is read from it."""

    def __init__(self, pid: int | None, reason: str) -> None:
        Exception.__init__(self, f"{the_host(pid)} answered something this client cannot read: {reason}")
        self.pid = pid
        self.reason = reason

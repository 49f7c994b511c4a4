"""Where a database's host keeps its files: the lease, the control socket, the token.

All three sit beside the database so that whoever can name the database can find
its host; the socket moves to a private runtime directory when its path would be
too long for a unix socket address (:func:`core.private.socket_beside`).
"""

from __future__ import annotations

from pathlib import Path

from ..private import socket_beside


def lease_path(db: str | Path) -> Path:
    """``<db>.lease``: the file the host holds an exclusive lock on."""
    return Path(f"{Path(db).absolute()}.lease")


def host_socket_path(db: str | Path) -> Path:
    """The host's HTTP control socket (mode 0600)."""
    return socket_beside(db, "sock")


def token_path(db: str | Path) -> Path:
    """``<db>.token``: the bearer token TCP clients must present (mode 0600)."""
    return Path(f"{Path(db).absolute()}.token")

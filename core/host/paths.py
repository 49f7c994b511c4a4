"""Where a database's host keeps its files: the lease, the control socket, the token.

All three sit beside the database so that whoever can name the database can find
its host; the socket moves to a private runtime directory when its path would be
too long for a unix socket address (:func:`core.private.socket_beside`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from ..private import socket_beside
from .errors import HostError


def real(db: str | Path) -> Path:
    """The database's one name: symlinks and ``..`` resolved, so two spellings of one
    file share one lease (and one socket, one token)."""
    return Path(db).resolve()


def lease_path(db: str | Path) -> Path:
    """``<db>.lease``: the file the host holds an exclusive lock on."""
    return Path(f"{real(db)}.lease")


def host_socket_path(db: str | Path) -> Path:
    """The host's HTTP control socket (mode 0600)."""
    return socket_beside(real(db), "sock")


def token_path(db: str | Path) -> Path:
    """``<db>.token``: the bearer token TCP clients must present (mode 0600)."""
    return Path(f"{real(db)}.token")


def check_database(db: str | Path, create: bool, can_create: bool = True) -> Path:
    """``db`` as a path a host may open: it exists, or ``create`` and its directory exists.

    Nothing is created here, and never a directory: a typo in a path must not become
    a new fleet. ``can_create``: the caller's verb has ``--create`` (the error offers it)."""
    p = Path(db)
    if p.is_dir():
        raise HostError(f"{p}: is a directory, not a database file")
    if p.exists():
        return p
    if not create:
        raise HostError(f"no such database: {p}" + (" (pass --create to make a new one)" if can_create else ""))
    if not p.parent.is_dir():
        raise HostError(f"no such directory: {p.parent} (opsdeck does not create directories)")
    return p


def bind_socket(path: Path) -> socket.socket:
    """A unix socket bound at ``path`` and made 0600, not listening yet. We hold the
    lease, so a socket file already there is a dead host's: it is replaced."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)  # before listen(): nobody can connect yet
    except BaseException:
        sock.close()
        raise
    return sock

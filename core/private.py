"""Files and directories that only their owner can reach, whatever the umask.

Everything opsdeck keeps beside a database (agent sockets, the per-run secret, agent
logs, the control-plane socket) lives in a directory of mode 0700 that this user
owns; files are 0600. A directory that exists but belongs to someone else, or is a
symlink, is refused: another local user could have created it to squat our names.

Files beside a database (its anchor, lease, token) are opened through a descriptor
of their directory with ``O_NOFOLLOW``: a symlink planted at one of those names is an
error naming it, never a way to make opsdeck write somewhere else. Like git's
``safe.directory`` and ssh's key checks, a database or a file beside it that another
user owns, or that others may write, is refused (:func:`check_owner`) unless the
operator trusts other owners explicitly (``--trust-owner``, ``OPSDECK_TRUST_OWNER=1``
or ``[storage] trust_owner``): its content decides which commands run as us.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pwd
import stat
import tempfile
from pathlib import Path

SOCKET_PATH_MAX = 100
"""sun_path holds 108 bytes on Linux (104 on the BSDs); keep a margin."""


class PrivateError(Exception):
    """A path that is not private to us (owned by another user, a symlink, wrong type)."""


class OwnershipError(PrivateError):
    """A database, or a file beside one, that another user owns or others may write."""


TRUST_ENV = "OPSDECK_TRUST_OWNER"


def trust_requested() -> bool:
    """Did the operator ask to trust files other users own (``--trust-owner`` sets this)?"""
    return os.environ.get(TRUST_ENV) == "1"


def user_name(uid: int) -> str:
    """``name (uid N)``, or ``uid N`` for a uid without an account."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def owner_problem(st: os.stat_result) -> str | None:
    """Why a file with this status may not be trusted: another owner, or writable by others."""
    me = os.getuid()
    if st.st_uid != me:
        return f"owned by {user_name(st.st_uid)}, not by {user_name(me)} who runs opsdeck"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if mode & stat.S_IWOTH else "its group"
        return f"writable by {who} (mode {mode:04o})"
    return None


def check_owner(path: str | Path, what: str, *, trust: bool = False, follow: bool = False) -> str | None:
    """Refuse ``path`` (when it exists) unless it is ours and not writable by others.

    ``what`` names it in the error ("database", "anchor", ...). Without ``follow`` a
    symlink at ``path`` is an error whatever ``trust`` says. With ``trust`` a file of
    another owner is let through and the problem is returned, for the caller to
    record (an audit line); None when there was nothing to trust."""
    p = Path(path)
    try:
        st = os.stat(p) if follow else os.lstat(p)
    except FileNotFoundError:
        return None
    if not follow and stat.S_ISLNK(st.st_mode):
        raise PrivateError(
            f"{p}: the {what} is a symlink (to {os.readlink(p)}); refusing to follow it. Nothing was changed"
        )
    problem = owner_problem(st)
    if problem is None:
        return None
    if trust:
        return f"{p}: the {what} is {problem}; trusted (--trust-owner)"
    raise OwnershipError(
        f"{p}: the {what} is {problem}; refusing to use it (its content decides what runs as you). "
        f"If this is a shared setup you trust, pass --trust-owner (or set {TRUST_ENV}=1). Nothing was changed"
    )


def open_beside(path: str | Path, flags: int, what: str, *, trust: bool = False, mode: int = 0o600) -> int:
    """A descriptor on ``path`` opened through its directory's descriptor with
    ``O_NOFOLLOW``: a symlink at ``path`` is a PrivateError naming it, and an existing
    file that another user owns (or others may write) is refused as by :func:`check_owner`.
    A file this call creates is ``mode`` (0600) whatever the umask."""
    p = Path(path)
    dfd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(p.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                target = os.readlink(p.name, dir_fd=dfd)
                raise PrivateError(
                    f"{p}: the {what} is a symlink (to {target}); refusing to follow it. Nothing was changed"
                ) from None
            raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PrivateError(f"{p}: the {what} is not a regular file")
        problem = owner_problem(st)
        if problem is not None and not trust:
            raise OwnershipError(
                f"{p}: the {what} is {problem}; refusing to use it. If this is a shared setup you trust, "
                f"pass --trust-owner (or set {TRUST_ENV}=1). Nothing was changed"
            )
        if flags & (os.O_WRONLY | os.O_RDWR) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_dir(p: Path) -> None:
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        raise PrivateError(f"{p}: is a symlink; refusing to keep private files there")
    if not stat.S_ISDIR(st.st_mode):
        raise PrivateError(f"{p}: exists and is not a directory")
    if st.st_uid != os.getuid():
        raise PrivateError(
            f"{p}: owned by uid {st.st_uid}, not by us (uid {os.getuid()}); someone may be squatting it: refusing"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(p, 0o700)


def private_dir(path: str | Path) -> Path:
    """``path`` as a directory of mode 0700 owned by us (created with its parents).

    Parents that do not exist are created 0700 too; the directory itself is checked
    after creation (owner, not a symlink) and its mode corrected if it was ours but
    too open.
    """
    p = Path(path)
    missing: list[Path] = []
    q = p
    while not q.exists() and not q.is_symlink():
        missing.append(q)
        if q.parent == q:
            break
        q = q.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
            os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass  # created meanwhile by someone: checked below (the last one) or trusted as a parent
    _check_dir(p)
    return p


def new_private_dir(path: str | Path) -> Path:
    """``path`` as :func:`private_dir` makes it, in two system calls when it is new and
    its parent exists (a ``mkdir`` of ours is ours and no symlink: nothing to check);
    otherwise by :func:`private_dir`. For a directory made per task run."""
    p = Path(path)
    try:
        os.mkdir(p, 0o700)
    except OSError:  # there already (checked as any), or its parent is missing (made too)
        return private_dir(p)
    os.chmod(p, 0o700)  # mkdir's mode is filtered by the umask
    return p


def _runtime_base() -> Path:
    """A short directory of our own for sockets whose natural path is too long."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and len(xdg) < 40 and os.path.isdir(xdg):
        try:
            _check_dir(Path(xdg))
            return Path(xdg) / "opsdeck"
        except PrivateError:
            pass
    return Path(tempfile.gettempdir()) / f"opsdeck-{os.getuid()}"


def socket_path(base: str | Path, name: str) -> Path:
    """Where the unix socket ``name`` of the private directory ``base`` lives.

    ``base/name`` when it fits in a socket address; otherwise a short private
    directory named for ``base`` (``$XDG_RUNTIME_DIR/opsdeck/<digest>`` or
    ``/tmp/opsdeck-<uid>/<digest>``). Never an abstract socket: those ignore file
    permissions, so anyone on the machine could connect or squat the name.
    """
    b = private_dir(base)
    p = b / name
    if len(os.fsencode(str(p))) <= SOCKET_PATH_MAX:
        return p
    digest = hashlib.sha256(os.fsencode(str(b.resolve()))).hexdigest()[:16]
    short = private_dir(private_dir(_runtime_base()) / digest)
    p = short / name
    if len(os.fsencode(str(p))) > SOCKET_PATH_MAX:
        raise PrivateError(f"{p}: a socket name this long does not fit in a unix socket address")
    return p


def write_private(path: str | Path, data: bytes | str, *, sync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically as a 0600 file (a temporary file made with
    ``O_EXCL``, fsync unless not ``sync``, rename). A symlink at ``path`` is an error naming
    it (the rename would replace the link, not write through it, but a planted link means
    someone is at work in that directory). Without ``sync`` a power loss may leave the
    file missing or torn: for records whose loss or damage is told and harmless."""
    p = Path(path)
    if p.is_symlink():
        raise PrivateError(f"{p}: is a symlink (to {os.readlink(p)}); refusing to replace it. Nothing was changed")
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(raw)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def open_private(path: str | Path, append: bool = True) -> int:
    """A file descriptor on ``path`` created 0600 (for logs handed to child processes);
    a symlink at ``path`` is refused (``O_NOFOLLOW``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PrivateError(f"{path}: is a symlink; refusing to follow it") from None
        raise
    os.fchmod(fd, 0o600)
    return fd


def socket_beside(path: str | Path, suffix: str) -> Path:
    """A unix socket named ``<path>.<suffix>`` beside ``path`` (a database, say) when
    that fits in a socket address, else ``<digest>.<suffix>`` in a short private
    directory (``$XDG_RUNTIME_DIR/opsdeck`` or ``/tmp/opsdeck-<uid>``) named by a hash
    of the path. The directory of ``path`` is left as it is: it is the user's; the
    socket file itself is made 0600 by whoever binds it."""
    p = Path(path).absolute()
    beside = Path(f"{p}.{suffix}")
    if len(os.fsencode(str(beside))) <= SOCKET_PATH_MAX:
        return beside
    digest = hashlib.sha256(os.fsencode(str(p))).hexdigest()[:24]
    short = private_dir(_runtime_base()) / f"{digest}.{suffix}"
    if len(os.fsencode(str(short))) > SOCKET_PATH_MAX:
        raise PrivateError(f"{short}: a socket name this long does not fit in a unix socket address")
    return short


def is_private(path: str | Path) -> bool:
    """Owned by us and closed to group and others."""
    st = os.stat(path)
    return st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0

"""Files and directories that only their owner can reach, whatever the umask.

Everything opsdeck keeps beside a database (agent sockets, the per-run secret, agent
logs, the control-plane socket) lives in a directory of mode 0700 that this user
owns; files are 0600. A directory that exists but belongs to someone else, or is a
symlink, is refused: another local user could have created it to squat our names.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

SOCKET_PATH_MAX = 100
"""sun_path holds 108 bytes on Linux (104 on the BSDs); keep a margin."""


class PrivateError(Exception):
    """A path that is not private to us (owned by another user, a symlink, wrong type)."""


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


def write_private(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically as a 0600 file (a temporary file, fsync, rename)."""
    p = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def open_private(path: str | Path, append: bool = True) -> int:
    """A file descriptor on ``path`` created 0600 (for logs handed to child processes)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
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

"""The agent channel's authentication: who is on the other end of the socket.

Both ends check the peer's uid with ``SO_PEERCRED`` (the console also checks the
pid when it knows which host it started), then prove knowledge of the per-run secret
by HMAC-SHA256 over a fresh nonce from the other side (mutual challenge-response):

    host -> console   {"t": "challenge", "nonce": N1}
    console -> host   {"op": "auth", "mac": HMAC(secret, "console:" N1), "nonce": N2}
    host -> console   {"t": "auth", "mac": HMAC(secret, "host:" N2)}

Only then does the host accept commands, and only then does the console send any
(a task's command line and environment included). The secret reaches each host in
a 0600 file in the run's 0700 directory (never its command line, never the log).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
from pathlib import Path

from ..private import write_private
from .wire import MAX_LINE, CommandReader

HANDSHAKE_TIMEOUT_S = 10.0
SECRET_FILE = "secret"


class ChannelError(Exception):
    """The peer is not who it must be; nothing was sent to it."""


def load_or_create_secret(run_dir: Path) -> bytes:
    """The run's secret (kept across console restarts so live hosts can be adopted).

    A new one is written without an fsync: it matters only to the hosts that live with
    it (their channel, their ``processes`` rows' MACs), and a power loss, the one thing
    an fsync guards against, ends them all. A file such a loss left missing, short or
    not the hex it was written as is replaced by a new secret, as a missing one is."""
    p = run_dir / SECRET_FILE
    try:
        raw = p.read_bytes()
        st = os.stat(p)
        if st.st_uid == os.getuid() and len(raw) >= 32 and not raw.strip(_HEX):
            if st.st_mode & 0o077:
                os.chmod(p, 0o600)
            return raw
    except FileNotFoundError:
        pass
    raw = secrets.token_hex(32).encode()
    write_private(p, raw, sync=False)
    return raw


_HEX = b"0123456789abcdef"
"""What a secret is written as (:func:`secrets.token_hex`): a file holding anything else
(a torn write's zeros) is not one."""


def read_secret(path: str | Path) -> bytes:
    raw = Path(path).read_bytes()
    if len(raw) < 32:
        raise ChannelError(f"{path}: the secret is too short")
    return raw


def mac(secret: bytes, role: str, nonce: str) -> str:
    return hmac.new(secret, f"{role}:{nonce}".encode(), hashlib.sha256).hexdigest()


def peer_credentials(writer: asyncio.StreamWriter) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix stream socket."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


async def _read(reader: asyncio.StreamReader) -> dict[str, object]:
    line = await asyncio.wait_for(reader.readline(), HANDSHAKE_TIMEOUT_S)
    if not line:
        raise ChannelError("the peer closed the connection during the handshake")
    try:
        msg = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ChannelError("the peer sent a garbled handshake") from None
    if not isinstance(msg, dict):
        raise ChannelError("the peer sent a garbled handshake")
    return msg


def _line(msg: dict[str, object]) -> bytes:
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


async def host_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes) -> None:
    """The host's side: the peer runs as our uid and knows the secret, or ChannelError."""
    pid, uid, _ = peer_credentials(writer)
    if uid != os.getuid():
        raise ChannelError(f"connection from uid {uid} (pid {pid}) refused: not our uid {os.getuid()}")
    nonce = secrets.token_hex(16)
    writer.write(_line({"t": "challenge", "nonce": nonce}))
    await writer.drain()
    msg = await _read(reader)
    theirs = msg.get("nonce")
    if (
        msg.get("op") != "auth"
        or not isinstance(msg.get("mac"), str)
        or not isinstance(theirs, str)
        or len(theirs) < 16
    ):
        raise ChannelError(f"pid {pid}: no authentication")
    if not hmac.compare_digest(str(msg["mac"]), mac(secret, "console", nonce)):
        raise ChannelError(f"pid {pid}: wrong secret")
    writer.write(_line({"t": "auth", "mac": mac(secret, "host", theirs)}))
    await writer.drain()


async def console_connect(
    address: str, secret: bytes, expect_pid: int | None = None, limit: int = MAX_LINE, framed: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to an agent host and authenticate it before anything is sent.

    ``framed``: the reader is a :class:`~.wire.CommandReader` past the handshake's two
    lines, which hands each report on from the loop's read callback once the caller
    says where (its ``deliver``); else a plain StreamReader.

    OSError: nobody listens (yet), or TimeoutError (an OSError): the peer did not
    answer the handshake in time, which on a loaded machine is a host still waiting for
    the CPU, not an impostor (the caller retries within its own budget). ChannelError:
    someone listens who is not our host (another uid, another process, or no knowledge
    of the secret).
    """
    loop = asyncio.get_running_loop()
    reader = CommandReader(limit, handshake_lines=2) if framed else asyncio.StreamReader(limit)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_unix_connection(lambda: protocol, address)  # asyncio.open_unix_connection's
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:
        pid, uid, _ = peer_credentials(writer)
        if uid != os.getuid():
            raise ChannelError(
                f"{address} is held by uid {uid} (pid {pid}), not by our agent host: refusing to send it anything"
            )
        if expect_pid is not None and pid != expect_pid:
            raise ChannelError(
                f"{address} is held by pid {pid}, not by our agent host (pid {expect_pid}): refusing to send it anything"
            )
        msg = await _read(reader)
        nonce = msg.get("nonce")
        if msg.get("t") != "challenge" or not isinstance(nonce, str) or len(nonce) < 16:
            raise ChannelError(f"{address}: the peer did not start the handshake")
        mine = secrets.token_hex(16)
        writer.write(_line({"op": "auth", "mac": mac(secret, "console", nonce), "nonce": mine}))
        await writer.drain()
        reply = await _read(reader)
        if reply.get("t") != "auth" or not hmac.compare_digest(str(reply.get("mac")), mac(secret, "host", mine)):
            raise ChannelError(f"{address}: the peer does not know the run's secret: refusing to send it anything")
    except (ChannelError, TimeoutError, ConnectionError, OSError) as exc:
        writer.close()
        if isinstance(exc, ChannelError):
            raise
        if isinstance(exc, TimeoutError):
            raise TimeoutError(f"{address}: no handshake within {HANDSHAKE_TIMEOUT_S:g}s") from None
        raise
    return reader, writer

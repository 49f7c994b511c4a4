"""Is a task waiting for a human? Read from the kernel, not guessed from silence.

A task is waiting for input when one of its processes is blocked in a read of the
task's own stdin (the pipe or pseudo-terminal the agent host gave it), or when its
last output line is a known prompt and nothing has been printed since. Linux tells
the first through ``/proc/PID/syscall`` (the blocked system call and its arguments)
and ``/proc/PID/fd/N`` (what the descriptor is); silence alone never counts: a
compile that prints nothing for ten minutes is not waiting for anyone.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from dataclasses import dataclass

import psutil

# Blocked system calls that wait on one descriptor given as their first argument.
_READ_CALLS: dict[str, frozenset[int]] = {
    "x86_64": frozenset({0, 17, 19, 295}),  # read, pread64, readv, preadv
    "aarch64": frozenset({63, 65, 67, 69}),  # read, readv, pread64, preadv
}
_READS = _READ_CALLS.get(platform.machine(), frozenset())

PROMPTS = re.compile(
    r"(\?\s*$|\[y/n\]|\(y/n\)|\[Y/n\]|\[y/N\]|press enter|continue\?|password:\s*$|^\S{0,20}>\s*$)",
    re.IGNORECASE,
)
"""Last output lines that read as a question to the operator."""


@dataclass(frozen=True)
class InputWait:
    """What shows a task waits: the process and how we know."""

    pid: int
    reason: str
    """"blocked reading stdin" or "prompt: <line>"."""


def stdin_target(pid: int) -> str | None:
    """What ``pid``'s descriptor 0 is (``pipe:[123]``, ``/dev/pts/4``), None if unreadable."""
    try:
        return os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return None


def blocked_read_fd(pid: int) -> int | None:
    """The descriptor ``pid`` is blocked reading, if it is blocked in a read at all."""
    try:
        with open(f"/proc/{pid}/syscall", encoding="ascii") as f:
            fields = f.read().split()
    except OSError:
        return None
    if len(fields) < 2 or not fields[0].isdigit() or int(fields[0]) not in _READS:
        return None  # "running", another call, or a kernel that does not say
    with contextlib.suppress(ValueError):
        return int(fields[1], 16)
    return None


def reading(pid: int, target: str) -> bool:
    """Whether ``pid`` is blocked reading the descriptor that is ``target``."""
    fd = blocked_read_fd(pid)
    if fd is None:
        return False
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == target
    except OSError:
        return False


def waiting_for_input(
    members: list[psutil.Process], target: str | None, last_line: str | None, quiet_s: float, threshold_s: float
) -> InputWait | None:
    """Whether the task (its processes ``members``, its stdin ``target``) waits for a human.

    ``quiet_s`` is how long the task has printed nothing; nothing counts before
    ``threshold_s`` of quiet, so a prompt answered at once never raises a flag.
    """
    if quiet_s < threshold_s:
        return None
    if target is not None:
        for p in members:
            if reading(p.pid, target):
                return InputWait(p.pid, "blocked reading stdin")
    if last_line and PROMPTS.search(last_line.strip()[-200:]):
        pid = members[0].pid if members else 0
        return InputWait(pid, f"prompt: {last_line.strip()[-120:]}")
    return None


def supported() -> bool:
    """Whether this machine tells blocked reads apart (Linux on a known architecture)."""
    return bool(_READS) and os.path.exists(f"/proc/{os.getpid()}/syscall")

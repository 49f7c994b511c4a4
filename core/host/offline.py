"""In-process tools on a real-process database whose host is down.

The processes of the local and Ray runtimes are reached only through the host that
runs them. When no host holds such a database, ``opsdeck exec`` and ``script`` open it
in-process: there they answer read-only commands from the log and refuse whatever
would change the fleet, naming the host to start, rather than acknowledge a change
that no process received.
"""

from __future__ import annotations

from pathlib import Path

from ..commands.executor import resolve_spec
from ..projection import State
from ..runtimes.real import REAL_RUNTIMES
from .language import LANGUAGE


def fleet_runtime(state: State) -> str | None:
    """The real-process runtime a database's fleet runs on (its host records it in the
    ``<name>_runtime`` setting), or None for a simulated one."""
    for name in REAL_RUNTIMES:
        if f"{name}_runtime" in state.settings:
            return name
    return None


def refusal(db: str | Path, runtime: str, what: str) -> str:
    """Why ``what`` was not done, and the host to start."""
    flag = "" if runtime == "local" else f" --runtime {runtime}"
    return (
        f"{db} runs real processes (the {runtime} runtime) and no host runs it now: {what} would change them "
        f"and was refused; nothing was changed. Start its host: opsdeck serve WORKFLOW.toml{flag} --db {db} "
        f"(or opsdeck run WORKFLOW.toml{flag} --db {db} for the console), then send it again"
    )


def command_refusal(state: State, db: str | Path, text: str) -> str | None:
    """The refusal of a command that would change a real fleet with no host, else None
    (read-only commands, simulated databases, and text that does not parse, whose own
    error the command path gives)."""
    runtime = fleet_runtime(state)
    if runtime is None:
        return None
    spec = resolve_spec(text, LANGUAGE)
    if spec is None or not spec.mutates:
        return None
    return refusal(db, runtime, spec.name)

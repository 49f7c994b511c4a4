"""Executing commands: parse, validate, execute against the engine, record.

``run_command(engine, text, actor)`` is the one command path of the console's
palette, headless scripts, playbooks and tests. It never raises for bad input: a
command that cannot be parsed or validated gets an error response and changes
nothing; a command that runs is recorded as a ``COMMAND_EXECUTED`` event.
"""

from __future__ import annotations

import traceback
from typing import Any

from ..engine import Engine, EngineError
from ..event_types import COMMAND_EXECUTED
from ..store_errors import StorageError
from .binding import bind, resolve_spec
from .context import Context, Services
from .grammar import CommandSyntaxError, parse
from .operations import LANGUAGE
from .registry import KINDS, OperationSpec, Outcome, Registry
from .responses import DEFAULT_SUGGESTIONS, CommandError, error, from_exception, success
from .resumption import attach

__all__ = [
    "KINDS",
    "LANGUAGE",
    "OperationSpec",
    "Outcome",
    "Registry",
    "Services",
    "attach",
    "resolve_spec",
    "run_command",
]

SUMMARY_MAX = 300


def _syntax_error(exc: CommandSyntaxError) -> dict[str, Any]:
    details = {"line": exc.line, "column": exc.column, **exc.details}
    sugg = list(exc.details.get("suggestions", []))
    if "usage" in exc.details:
        sugg.append(f"usage: {exc.details['usage']}")
    if not sugg:
        sugg = ["opsdeck help", "/<component> <operation> ['<json>'] [--flag]"]
    return error(exc.code, f"line {exc.line}, column {exc.column}: {exc.message}", details, sugg)


async def run_command(target: Services | Engine, text: str, actor: str = "operator", commit: bool = False) -> dict:
    """Parse, validate, execute and record one command; return the response dict.

    ``target`` is the services the command may use (the engine, the registry it is
    resolved in, and whatever the caller adds: the incident pipeline, the host); a
    bare engine stands for the command language's own operations on it.

    Never raises. A command is a unit of work: on an error response its events are
    taken back (state, chain and log as before) and nothing is recorded; on success
    its events and its COMMAND_EXECUTED record are kept together. (A command that
    had to commit part of its work before failing, such as one that checkpoints
    midway, keeps it and is recorded with ``status: error, partial: true``.)

    With ``commit`` (a host answering a client) the command's events are committed
    before it answers; a commit the storage refuses (a full disk, a read-only file
    system, a lock held too long) takes the command back and answers
    ``STORAGE_FULL`` / ``STORAGE_READONLY`` / ``STORAGE_LOCKED`` / ``STORAGE_IO``.
    A command that changed nothing (no event but its own COMMAND_EXECUTED record, and
    no change held uncommitted when it began, only other queries' records) acknowledges nothing new: it is
    answered without waiting for a commit, and its record stays held for the caller's
    next group commit (``engine.unflushed`` says so; a host commits it shortly after)."""
    try:
        services = target if isinstance(target, Services) else Services(target, LANGUAGE)
        return await _run_command(services, text, actor, commit)
    except Exception as exc:  # noqa: BLE001 - whatever happens, the caller gets a response
        return error(
            "INTERNAL_ERROR",
            f"{type(exc).__name__}: {exc}",
            {"trace": traceback.format_exc(limit=4).splitlines()[-6:]},
            ["report this as a bug"],
        )


def _not_utf8(text: str) -> int | None:
    """1-based column of the first character that cannot be UTF-8 (a lone surrogate:
    undecodable bytes on a command line), or None."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start + 1


async def _run_command(services: Services, text: str, actor: str, commit: bool = False) -> dict:
    engine = services.engine
    col = _not_utf8(text)
    if col is not None:
        return error(
            "INVALID_COMMAND", f"column {col}: the command is not valid UTF-8 text", {"column": col}, ["opsdeck help"]
        )
    try:
        bound = bind(parse(text), services.registry)
    except CommandSyntaxError as exc:
        return _syntax_error(exc)
    except CommandError as exc:
        return from_exception(exc)
    except Exception as exc:  # noqa: BLE001 - bad input must never raise
        return error("INVALID_COMMAND", f"{type(exc).__name__}: {exc}", {}, ["opsdeck help"])
    spec = bound.spec
    if engine.readonly and spec.mutates:
        return error(
            "READ_ONLY",
            f"{spec.name} changes state and this console is read-only",
            {"kind": spec.kind},
            DEFAULT_SUGGESTIONS["READ_ONLY"],
        )
    if not engine.readonly:
        attach(engine)
    seq0 = engine.state.seq
    held = engine.holds_changes
    ctx = Context(services, actor=actor, spec=spec, text=text, workflow_id=bound.workflow_id, flags=bound.flags)
    unit = engine.begin_unit()
    try:
        return await _execute(engine, spec, bound, ctx, unit, text, actor, seq0, commit and not engine.readonly, held)
    finally:
        engine.end_unit(unit, keep=False)  # only if still open (an exception escaped): take it back


async def _execute(
    engine: Engine,
    spec: Any,
    bound: Any,
    ctx: Context,
    unit: Any,
    text: str,
    actor: str,
    seq0: int,
    commit: bool,
    held: bool,
) -> dict:
    outcome: Outcome | None = None
    refused: StorageError | None = None
    try:
        outcome = await spec.handler(ctx, bound.payload)
        resp = success(
            spec.name,
            {**outcome.result, "summary": outcome.summary},
            timestamp=engine.clock.now(),
            workflow_id=outcome.workflow_id or bound.workflow_id,
            metrics=_metrics(engine),
            next_steps=outcome.next_steps,
        )
    except CommandError as exc:
        resp = from_exception(exc)
    except EngineError as exc:
        resp = error(exc.code, exc.message, exc.details, DEFAULT_SUGGESTIONS.get(exc.code, []))
    except StorageError as exc:  # a commit inside the command (a checkpoint's) was refused
        refused = exc
        resp = storage_error(exc, taken_back=True)
    except Exception as exc:  # noqa: BLE001
        resp = error(
            "INTERNAL_ERROR",
            f"{spec.name} failed: {type(exc).__name__}: {exc}",
            {"trace": traceback.format_exc(limit=4).splitlines()[-6:]},
            ["report this as a bug"],
        )
    partial = False
    if resp["status"] != "success":
        partial = not engine.end_unit(unit, keep=False)
        unit = None
    if refused is not None and not partial:
        return resp  # taken back whole: nothing to record (and the storage would refuse the record too)
    if refused is not None:  # something of it was committed (a checkpoint's row): the rest is held
        resp = storage_error(refused, taken_back=False)
    changed = engine.state.seq != seq0
    if not engine.readonly and (resp["status"] == "success" or changed):
        summary = outcome.summary if outcome is not None else resp.get("error", {}).get("message", "")
        data: dict[str, Any] = {
            "command": text.strip(),
            "component": spec.component,
            "operation": spec.operation,
            "kind": spec.kind,
            "status": resp["status"],
            "summary": summary[:SUMMARY_MAX],
            "events": engine.state.seq - seq0,
        }
        if resp["status"] == "error":
            data["error"] = resp["error"]["code"]
            data["partial"] = partial
        try:
            engine.emit(COMMAND_EXECUTED, "command", spec.component, data, actor=actor)
        except EngineError:
            pass
    # What the answer shows must be committed: the command's changes and whatever was
    # held before it. A command that changed nothing acknowledges only its own record.
    # With transaction logging (emergency-data-protection) every command is committed
    # before its reply, whoever runs it.
    logged = not engine.readonly and (resp["status"] == "success" or changed) and _transaction_logging(engine)
    if (commit and (changed or held)) or logged:
        try:
            await engine.flush()  # inside the unit: a refused commit can still be taken back
        except StorageError as exc:
            taken_back = engine.end_unit(unit, keep=False) if unit is not None else False
            return storage_error(exc, taken_back)
    engine.end_unit(unit, keep=True)
    return resp


def storage_error(exc: StorageError, taken_back: bool) -> dict[str, Any]:
    """The answer to a command whose commit the storage refused."""
    what = (
        "the command was taken back: nothing of it was recorded"
        if taken_back
        else "its events are held in memory, not committed: they are committed when the storage accepts writes again"
    )
    return error(
        f"STORAGE_{exc.kind.upper()}",
        f"{exc}; {what}",
        {"kind": exc.kind, "path": exc.path, "taken_back": taken_back},
        ["/host status", "retry once the condition has passed"],
    )


def _transaction_logging(engine: Engine) -> bool:
    """``/coordination-hub emergency-data-protection`` with ``enable_transaction_logging``
    asks that every command be committed to the log before its response."""
    cfg = engine.state.settings.get("data_protection")
    return isinstance(cfg, dict) and bool(cfg.get("commit_every_command"))


def _metrics(engine: Engine) -> dict[str, Any]:
    u = engine.utilisation()
    return {
        "cpu_pct": u["cpu"],
        "memory_pct": u["memory"],
        "agents_pct": u["agents"],
        "seq": engine.state.seq,
        "clock": round(engine.clock.now(), 3),
    }

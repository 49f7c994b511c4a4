"""What the operator's keys and palette do to the engine, in one place.

Every action returns the ecosystem's response shape (``{"status": "success", ...}``
or ``{"status": "error", "error": {"code", "message"}}``) and never raises, so the
console can show the outcome as a notification. A read-only console refuses
anything that would change state before touching the engine.
"""

from __future__ import annotations

import importlib
import inspect
import time
from typing import Any

from core.engine import Engine, EngineError

ACTOR = "operator"
INCIDENT_MODULES = ("core.incidents", "core.incidents.decisions", "core.incidents.executor", "core.incidents.pipeline", "core.incidents.approval")


def ok(operation: str, result: Any = None, **extra: Any) -> dict[str, Any]:
    return {"status": "success", "operation": operation, "result": result, **extra}


def error(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, "details": details or {}}}


def read_only_refusal(what: str) -> dict[str, Any]:
    return error("READ_ONLY", f"read-only console: {what} would change state and was refused")


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def commands_module() -> Any | None:
    """``core.commands`` when it is installed (the slash-command registry)."""
    return _module("core.commands")


def incidents_module() -> Any | None:
    return _module("core.incidents")


def registry() -> list[Any]:
    """The registry's operation specs (component, operation, summary, help, payload, mutates)."""
    mod = commands_module()
    reg = getattr(mod, "REGISTRY", None) if mod else None
    if reg is None:
        return []
    items = reg.values() if isinstance(reg, dict) else reg
    return sorted(items, key=lambda s: (str(getattr(s, "component", "")), str(getattr(s, "operation", ""))))


def command_mutates(text: str) -> bool | None:
    """Whether a slash command changes state, from the registry (None: does not parse)."""
    mod = commands_module()
    resolve = getattr(mod, "resolve_spec", None) if mod else None
    if resolve is not None:
        spec = resolve(text)
        return None if spec is None else bool(spec.mutates)
    parts = text.strip().split()
    if len(parts) < 2:
        return None
    comp, op = parts[0].lstrip("/"), parts[1]
    for entry in registry():
        if (getattr(entry, "component", None), getattr(entry, "operation", None)) == (comp, op):
            return bool(getattr(entry, "mutates", True))
    return None


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def run_slash(engine: Engine, text: str, readonly: bool) -> dict[str, Any]:
    """Run a raw slash command through the shared command path."""
    mod = commands_module()
    if mod is None or not hasattr(mod, "run_command"):
        return error("UNAVAILABLE", "the slash-command registry (core.commands) is not installed in this build")
    if readonly and command_mutates(text):
        return read_only_refusal(" ".join(text.split()[:2]))
    try:
        res = await _maybe_await(mod.run_command(engine, text, ACTOR))
    except EngineError as exc:  # run_command should not raise; stay safe if it does
        return error(exc.code, exc.message, exc.details)
    await engine.flush()
    return res if isinstance(res, dict) else ok("command", res)


async def engine_op(engine: Engine, operation: str, fn: Any, *args: Any, readonly: bool = False, **kw: Any) -> dict[str, Any]:
    """Run one engine operation (sync or async); EngineError becomes an error response."""
    if readonly:
        return read_only_refusal(operation)
    t0 = time.perf_counter()
    try:
        result = await _maybe_await(fn(*args, **kw))
        await engine.flush()
    except EngineError as exc:
        return error(exc.code, exc.message, exc.details)
    except (KeyError, ValueError, TypeError) as exc:
        return error("INVALID_REQUEST", f"{operation}: {exc}")
    return ok(operation, result, took_ms=round((time.perf_counter() - t0) * 1000, 2))


def find_function(names: tuple[str, ...], modules: tuple[str, ...] = ("core.incidents",)) -> Any | None:
    """The first of ``names`` exposed by the incidents package or its submodules."""
    for mname in modules:
        mod = _module(mname)
        if mod is None:
            continue
        for n in names:
            fn = getattr(mod, n, None)
            if callable(fn):
                return fn
    return None


async def plan_action(engine: Engine, action: str, plan_id: str, readonly: bool, **kw: Any) -> dict[str, Any]:
    """approve / reject / edit / abort a plan through core.incidents."""
    names = {
        "approve": ("approve_plan", "approve"),
        "reject": ("reject_plan", "reject"),
        "edit": ("edit_plan", "edit"),
        "abort": ("abort_plan", "abort"),
    }[action]
    fn = find_function(names, INCIDENT_MODULES)
    if fn is None:
        return error("UNAVAILABLE", f"{action}: the incidents package (core.incidents) does not provide it in this build")
    return await engine_op(engine, f"{action}-plan", fn, engine, plan_id, readonly=readonly, actor=ACTOR, **kw)


async def resumption_action(engine: Engine, action: str, resumption_id: str, readonly: bool) -> dict[str, Any]:
    """Advance a staged resumption to its next step now, or hold (toggle) it."""
    if readonly:
        return read_only_refusal(f"{action} resumption")
    names = {"advance": ("advance_resumption",), "hold": ("hold_resumption",)}[action]
    fn = find_function(names, ("core.commands.resumption",) + INCIDENT_MODULES)
    if fn is None:
        return error("UNAVAILABLE", f"{action}: staged resumption is not provided by core.commands in this build")
    return await engine_op(engine, f"{action}-resumption", fn, engine, resumption_id, actor=ACTOR)


def drill_names() -> list[str]:
    mod = _module("core.incidents.drills") or incidents_module()
    for attr in ("DRILLS", "SCENARIOS"):
        d = getattr(mod, attr, None) if mod else None
        if isinstance(d, dict):
            return sorted(d)
        if isinstance(d, (list, tuple)):
            return [getattr(x, "name", str(x)) for x in d]
    return []


async def start_drill(engine: Engine, name: str, readonly: bool, manager: Any = None) -> dict[str, Any]:
    """Arm a drill (manual approval: its plan waits for the operator); result is the Drill."""
    fn = find_function(("start_drill",), ("core.incidents.drills",))
    if fn is None:
        return error("UNAVAILABLE", "drills are not provided by core.incidents in this build")
    return await engine_op(engine, "start-drill", fn, engine, name, readonly=readonly, approve="manual", manager=manager)


def incident_manager(engine: Engine) -> Any | None:
    """The incident pipeline (detectors, plans, executor) with manual approval, if installed."""
    mod = _module("core.incidents.manager")
    cls = getattr(mod, "IncidentManager", None) if mod else None
    if cls is None:
        return None
    res_mod = _module("core.commands.resumption")
    if res_mod is not None and hasattr(res_mod, "attach"):
        res_mod.attach(engine)
    return cls(engine, approve_mode="manual")

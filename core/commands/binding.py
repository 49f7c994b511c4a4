"""Binding a parsed command to its registry entry: operation, workflow id, payload, flags.

Every problem becomes an error that names what is wrong, what was expected and
where (line and column in the command text), with "did you mean" suggestions for
unknown components, operations, fields and flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .grammar import Argument, CommandSyntaxError, ParsedCommand, Token, json_positions, parse
from .registry import OperationSpec, Registry
from .responses import CommandError


@dataclass
class Bound:
    spec: OperationSpec
    workflow_id: str | None
    payload: BaseModel
    flags: dict[str, Any]


def _fail(p: ParsedCommand, message: str, offset: int, code: str, **details: Any) -> CommandSyntaxError:
    return CommandSyntaxError(message, p.text, offset, code=code, details=details)


def resolve(p: ParsedCommand, registry: Registry) -> tuple[OperationSpec, list[Argument]]:
    """The operation named, and the arguments left after it."""
    if not registry.has_component(p.component):
        comps = registry.components()
        near = registry.suggest(p.component, comps)
        hint = f"; did you mean {', '.join('/' + c for c in near)}?" if near else ""
        raise _fail(
            p,
            f"unknown component /{p.component}{hint}",
            p.component_token.start + 1,
            "UNKNOWN_COMPONENT",
            component=p.component,
            suggestions=["/" + c for c in near],
            known=["/" + c for c in comps],
        )
    args = list(p.arguments)
    default = registry.default_of(p.component)
    if default is not None:
        for i, a in enumerate(args):
            if not a.is_json and registry.get(p.component, a.value) is not None:
                return registry.get(p.component, a.value), args[:i] + args[i + 1 :]  # type: ignore[return-value]
        return default, args
    ops = registry.operations(p.component)
    if not args or args[0].is_json:
        at = args[0].token.start if args else len(p.text.rstrip())
        raise _fail(
            p,
            f"/{p.component} needs an operation: one of {', '.join(ops)}",
            at,
            "MISSING_OPERATION",
            component=p.component,
            expected=ops,
        )
    word = args[0]
    spec = registry.get(p.component, word.value)
    if spec is None and len(args) > 1 and not args[1].is_json and registry.get(p.component, args[1].value) is not None:
        # The workflow id written before the operation: /coordination-hub workflow_001 pause
        return registry.get(p.component, args[1].value), [word, *args[2:]]  # type: ignore[return-value]
    if spec is None:
        names = ops + [a for (c, a) in registry._aliases if c == p.component]
        near = registry.suggest(word.value, names)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise _fail(
            p,
            f"unknown operation {word.value!r} of /{p.component}{hint}",
            word.token.start,
            "UNKNOWN_OPERATION",
            component=p.component,
            operation=word.value,
            suggestions=[f"/{p.component} {n}" for n in near],
            known=ops,
        )
    return spec, args[1:]


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(payload)"


def _error_offset(
    p: ParsedCommand,
    tok_for: dict[str, Argument],
    single: Argument | None,
    loc: tuple[Any, ...],
    kind: str,
    spec: OperationSpec,
) -> int:
    """Where in the text a validation error points: the field's key or value."""
    if spec.json_args:
        if not loc or loc[0] not in tok_for:
            return len(p.text.rstrip())
        arg = tok_for[str(loc[0])]
        path = tuple(loc[1:])
    else:
        if single is None:
            return len(p.text.rstrip())
        arg = single
        path = tuple(loc)
    pos = json_positions(arg.token.value)
    if kind == "extra_forbidden" and (*path, "__key__") in pos:
        return arg.token.offset_of(pos[(*path, "__key__")])
    while path:
        if path in pos:
            return arg.token.offset_of(pos[path])
        path = path[:-1]
    return arg.token.offset_of(pos.get((), 0))


def bind(p: ParsedCommand, registry: Registry) -> Bound:
    spec, rest = resolve(p, registry)
    words = [a for a in rest if not a.is_json]
    jsons = [a for a in rest if a.is_json]
    wf_id: str | None = None
    word_values: dict[str, str] = {}
    word_toks: dict[str, Token] = {}
    for name in spec.word_args:
        if not words:
            break
        word_toks[name] = words.pop(0).token
        word_values[name] = word_toks[name].value
    if spec.workflow_arg != "none" and words:
        wf_id = words.pop(0).value
    if words:
        extra = words[0]
        what = "a workflow id was already given" if wf_id else f"{spec.name} takes no bare word arguments"
        raise _fail(
            p,
            f"unexpected argument {extra.value!r}: {what}",
            extra.token.start,
            "UNEXPECTED_ARGUMENT",
            usage=spec.usage,
        )
    if spec.workflow_arg == "required" and wf_id is None:
        raise _fail(p, f"{spec.name} needs a workflow id", len(p.text.rstrip()), "WORKFLOW_REQUIRED", usage=spec.usage)
    data: dict[str, Any]
    single: Argument | None = None
    tok_for: dict[str, Argument] = {}
    if spec.json_args:
        if len(jsons) > len(spec.json_args):
            extra = jsons[len(spec.json_args)]
            raise _fail(
                p,
                f"{spec.name} takes {len(spec.json_args)} JSON argument(s), got {len(jsons)}",
                extra.token.start,
                "UNEXPECTED_ARGUMENT",
                usage=spec.usage,
            )
        data = {}
        for name, arg in zip(spec.json_args, jsons, strict=False):
            data[name] = arg.value
            tok_for[name] = arg
    else:
        if len(jsons) > 1:
            raise _fail(
                p,
                f"{spec.name} takes one JSON object, got {len(jsons)}",
                jsons[1].token.start,
                "UNEXPECTED_ARGUMENT",
                usage=spec.usage,
            )
        if jsons:
            single = jsons[0]
            if not isinstance(single.value, dict):
                raise _fail(
                    p,
                    f"the payload of {spec.name} must be a JSON object, got a {type(single.value).__name__}",
                    single.token.start,
                    "INVALID_PAYLOAD",
                    expected="a JSON object",
                )
            data = single.value
        else:
            data = {}
    if word_values:
        data = {**word_values, **data}
    flags: dict[str, Any] = {}
    for name, (value, tok) in p.flags.items():
        if name not in spec.flags:
            near = registry.suggest(name, list(spec.flags))
            hint = f"; did you mean {', '.join('--' + n for n in near)}?" if near else ""
            known = ", ".join("--" + f for f in spec.flags) or "none"
            raise _fail(
                p,
                f"unknown flag --{name} for {spec.name}{hint} (accepted: {known})",
                tok.start,
                "UNKNOWN_FLAG",
                flag=name,
                accepted=["--" + f for f in spec.flags],
            )
        flags[name] = value
    try:
        payload = spec.payload.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        first = errs[0]
        loc = tuple(first["loc"])
        field = _fmt_loc(loc)
        kind = first["type"]
        if kind == "extra_forbidden":
            names = _field_names(spec.payload, loc[:-1])
            near = registry.suggest(str(loc[-1]), names) if names else []
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            msg = f"unknown field {field!r}{hint}"
            expected = f"one of {', '.join(names)}" if names else "no such field"
        elif kind == "missing":
            msg = f"missing field {field!r}"
            expected = "a value"
        else:
            msg = f"field {field!r}: {first['msg']}"
            expected = first["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        if loc and loc[0] in word_toks and not (single and loc[0] in single.value):
            offset = word_toks[str(loc[0])].start
        else:
            offset = _error_offset(p, tok_for, single, loc, kind, spec)
        raise _fail(
            p,
            msg,
            offset,
            "INVALID_PAYLOAD",
            field=field,
            expected=expected,
            got=_short(first.get("input")),
            errors=[{"field": _fmt_loc(tuple(e["loc"])), "problem": e["msg"]} for e in errs[:10]],
            usage=spec.usage,
        ) from None
    return Bound(spec, wf_id, payload, flags)


def _short(v: Any) -> Any:
    text = repr(v)
    return v if len(text) <= 80 and isinstance(v, (str, int, float, bool, type(None))) else text[:80]


def _field_names(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model at ``path``, for "did you mean"."""
    cur: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return []
        cur = _inner_model(cur.model_fields[part].annotation)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return [f.alias or n for n, f in cur.model_fields.items()]
    return []


def _inner_model(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _inner_model(a)
        if m is not None:
            return m
    return None


__all__ = ["Bound", "bind", "resolve"]


def resolve_spec(text: str, registry: Registry) -> OperationSpec | None:
    """The entry of ``registry`` a command text names, or None if it does not parse."""
    try:
        return bind(parse(text), registry).spec
    except (CommandSyntaxError, CommandError):
        return None
    except Exception:  # noqa: BLE001 - a text that names nothing is None, however it fails
        return None

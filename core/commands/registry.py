"""The one registry of components and operations.

Each entry names its payload model, its help, the flags it accepts, whether it takes
a leading workflow id, and its kind: ``analysis`` (reads only), ``checkpoint``,
``monitoring`` (changes monitoring settings), ``destructive`` (pauses, reduces,
kills, rolls back) or ``lifecycle``. The parser resolves commands here; the
console's palette and completion and ``opsdeck help`` read the same entries.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .responses import suggest

Kind = Literal["analysis", "checkpoint", "monitoring", "destructive", "lifecycle"]
WorkflowArg = Literal["none", "optional", "required"]
KINDS: tuple[str, ...] = ("analysis", "checkpoint", "monitoring", "destructive", "lifecycle")


@dataclass
class Outcome:
    """What an operation returns: its result, a one-line summary and next steps."""

    result: dict[str, Any]
    summary: str
    next_steps: list[str] = field(default_factory=list)
    workflow_id: str | None = None


Handler = Callable[..., Awaitable[Outcome]]
"""``async (ctx: Context, payload) -> Outcome`` (the context names the registry: not imported here)."""


@dataclass(frozen=True)
class OperationSpec:
    component: str
    operation: str
    summary: str
    help: str
    payload: type[BaseModel]
    kind: Kind
    mutates: bool
    handler: Handler
    workflow_arg: WorkflowArg = "none"
    json_args: tuple[str, ...] = ()
    """Payload fields filled by successive JSON arguments; () = one JSON object is the payload."""
    flags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    default: bool = False
    """The operation run when the component is given without one (``/subagents '...'``)."""
    word_args: tuple[str, ...] = ()
    """Payload fields successive bare words fill (``/resource-manager usage cpu``,
    ``/coordination-hub send-input TASK 'text'``)."""

    @property
    def name(self) -> str:
        return f"/{self.component} {self.operation}"

    @property
    def usage(self) -> str:
        parts = [f"/{self.component}"]
        parts.append(f"[{self.operation}]" if self.default else self.operation)
        parts += [f"[{w}]" for w in self.word_args]
        if self.workflow_arg == "required":
            parts.append("<workflow-id>")
        elif self.workflow_arg == "optional":
            parts.append("[workflow-id]")
        if self.json_args:
            parts += [f"'<{a}-json>'" for a in self.json_args]
        elif self.payload.model_fields:
            parts.append("['<json>']")
        parts += [f"[--{f}]" for f in self.flags]
        return " ".join(parts)

    def fields(self) -> list[dict[str, Any]]:
        """The payload's fields for help and completion: name, type, default, help."""
        return model_fields(self.payload)


def model_fields(model: type[BaseModel], depth: int = 0) -> list[dict[str, Any]]:
    out = []
    for name, f in model.model_fields.items():
        tname = type_name(f.annotation)
        for m in f.metadata:
            fn = getattr(getattr(m, "func", None), "__name__", "")
            if fn == "parse_duration":
                tname = tname.replace("float", "duration")
            elif fn == "parse_percent":
                tname = tname.replace("float", "percent")
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump()
        elif isinstance(default, list) and default and isinstance(default[0], BaseModel):
            default = [d.model_dump(exclude_defaults=True) for d in default]
        row: dict[str, Any] = {
            "name": f.alias or name,
            "type": tname,
            "required": f.is_required(),
            "default": None if f.is_required() else repr(default),
            "help": f.description or "",
        }
        nested = _nested_model(f.annotation)
        if nested is not None and depth < 2:
            row["fields"] = model_fields(nested, depth + 1)
        out.append(row)
    return out


def _nested_model(ann: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _nested_model(a)
        if m is not None:
            return m
    return None


def type_name(ann: Any) -> str:
    """A payload field's type as help shows it: list[Stage], 'a'|'b', float | None."""
    import types
    import typing

    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Literal:
        return "|".join(repr(a) for a in args)
    if origin is typing.Annotated:
        base = type_name(args[0])
        return {
            "float": "duration"
            if any("duration" in repr(m) for m in args[1:])
            else "percent"
            if any("percent" in repr(m) for m in args[1:])
            else "float"
        }.get(base, base)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    if ann is type(None):
        return "None"
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


class Operations:
    """One module's operations, declared where they are written (``@OPS.operation``)
    and listed by whoever composes a :class:`Registry` of them: nothing is registered
    by importing a module."""

    def __init__(self, component: str, help: str | None) -> None:
        self.component = component
        self.help = help
        """One line about the component, for help and the palette; None for a further
        module of a component another module declares (listed after it)."""
        self.specs: list[OperationSpec] = []

    def operation(
        self,
        component: str,
        name: str,
        *,
        kind: Kind,
        payload: type[BaseModel],
        summary: str,
        workflow_arg: WorkflowArg = "none",
        json_args: tuple[str, ...] = (),
        flags: dict[str, str] | None = None,
        aliases: tuple[str, ...] = (),
        default: bool = False,
        mutates: bool | None = None,
        word_args: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare an async handler ``(ctx, payload) -> Outcome`` as an operation of this component."""
        if component != self.component:
            raise ValueError(f"/{component} {name} declared among the operations of /{self.component}")

        def deco(fn: Handler) -> Handler:
            self.specs.append(
                OperationSpec(
                    component=component,
                    operation=name,
                    summary=summary,
                    help=inspect.getdoc(fn) or summary,
                    payload=payload,
                    kind=kind,
                    mutates=(kind != "analysis") if mutates is None else mutates,
                    handler=fn,
                    workflow_arg=workflow_arg,
                    json_args=json_args,
                    flags=dict(flags or {}),
                    aliases=aliases,
                    default=default,
                    word_args=word_args,
                )
            )
            return fn

        return deco


class Registry:
    """Components and their operations, by name and alias: the modules' declarations
    it was composed of, and nothing else."""

    def __init__(self, *modules: Operations) -> None:
        self._ops: dict[tuple[str, str], OperationSpec] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        self._components: dict[str, list[str]] = {}
        """Each component's operations, sorted."""
        self._defaults: dict[str, OperationSpec] = {}
        """Each component's default operation (the first declared): looked up on every command."""
        self.modules: tuple[Operations, ...] = ()
        self.component_help: dict[str, str] = {}
        for m in modules:
            self.declare(m)

    def declare(self, module: Operations) -> None:
        """Add one module's operations (a component declared twice is refused; a
        further module, without help, extends one declared before it)."""
        if module.help is None:
            if module.component not in self.component_help:
                raise ValueError(f"/{module.component}: a further module listed before the component's own")
        elif module.component in self.component_help:
            raise ValueError(f"/{module.component} declared twice")
        else:
            self.component_help[module.component] = module.help
        self.modules += (module,)
        for spec in module.specs:
            self.add(spec)

    def extended(self, *modules: Operations) -> Registry:
        """A new registry: this one's modules and ``modules``."""
        return Registry(*self.modules, *modules)

    def __iter__(self) -> Iterator[OperationSpec]:
        return iter(sorted(self._ops.values(), key=lambda s: (s.component, s.operation)))

    def __len__(self) -> int:
        return len(self._ops)

    def add(self, spec: OperationSpec) -> None:
        key = (spec.component, spec.operation)
        if key in self._ops:
            raise ValueError(f"{spec.name} registered twice")
        self._ops[key] = spec
        self._components[spec.component] = sorted([*self._components.get(spec.component, []), spec.operation])
        if spec.default:
            self._defaults.setdefault(spec.component, spec)
        for a in spec.aliases:
            self._aliases[(spec.component, a)] = spec.operation

    def components(self) -> list[str]:
        return sorted(self._components)

    def has_component(self, component: str) -> bool:
        return component in self._components

    def operations(self, component: str) -> list[str]:
        return list(self._components.get(component, []))

    def get(self, component: str, operation: str) -> OperationSpec | None:
        op = self._aliases.get((component, operation), operation)
        return self._ops.get((component, op))

    def default_of(self, component: str) -> OperationSpec | None:
        return self._defaults.get(component)

    def lookup(self, name: str) -> OperationSpec | None:
        """``"/component operation"`` or ``"component operation"`` (or the component alone
        for a component with a default operation)."""
        parts = name.strip().lstrip("/").split()
        if not parts:
            return None
        if len(parts) == 1:
            return self.default_of(parts[0])
        return self.get(parts[0], parts[1])

    suggest = staticmethod(suggest)

    def complete(self, prefix: str) -> list[str]:
        """Completions of a partly typed command, for the palette."""
        text = prefix.lstrip()
        if not text.startswith("/"):
            text = "/" + text
        parts = text[1:].split(" ")
        if len(parts) == 1:
            return [f"/{c}" for c in self.components() if c.startswith(parts[0])]
        comp, op = parts[0], parts[1]
        if len(parts) == 2:
            names = self.operations(comp) + [a for (c, a) in self._aliases if c == comp]
            return sorted(f"/{comp} {o}" for o in set(names) if o.startswith(op))
        return []

    def entries(self) -> list[dict[str, Any]]:
        """A JSON-ready listing: what ``opsdeck help --json`` prints."""
        return [
            {
                "command": s.name,
                "component": s.component,
                "operation": s.operation,
                "summary": s.summary,
                "kind": s.kind,
                "mutates": s.mutates,
                "usage": s.usage,
                "flags": dict(s.flags),
                "aliases": list(s.aliases),
            }
            for s in self
        ]

    def help_text(self, name: str | None = None) -> str:
        """Help for one command, one component, or everything."""
        if not name:
            lines = ["Commands: /<component> <operation> ['<json>' ...] [--flag ...]", ""]
            for comp in self.components():
                lines.append(f"/{comp} - {self.component_help.get(comp, '')}")
                for s in self:
                    if s.component == comp:
                        lines.append(f"  {s.operation:<40} [{s.kind}] {s.summary}")
                lines.append("")
            return "\n".join(lines).rstrip() + "\n"
        parts = name.strip().lstrip("/").split()
        if len(parts) == 1 and parts[0] in self.components() and self.default_of(parts[0]) is None:
            comp = parts[0]
            lines = [f"/{comp} - {self.component_help.get(comp, '')}", ""]
            for s in self:
                if s.component == comp:
                    lines.append(f"  {s.operation:<40} [{s.kind}] {s.summary}")
            return "\n".join(lines) + "\n"
        spec = self.lookup(name)
        if spec is None:
            raise KeyError(name)
        lines = [f"{spec.usage}", "", spec.summary, ""]
        if spec.help and spec.help != spec.summary:
            # Docstrings are reST (``name``); a terminal reads the name, not the markup.
            lines += [re.sub(r"``([^`]+)``", r"\1", spec.help), ""]
        lines.append(f"kind: {spec.kind}   changes state: {'yes' if spec.mutates else 'no'}")
        if spec.aliases:
            lines.append("aliases: " + ", ".join(spec.aliases))
        fields = spec.fields()
        if fields:
            lines += ["", "payload fields:"]

            def show(rows: list[dict[str, Any]], indent: str) -> None:
                for f in rows:
                    req = "required" if f["required"] else f"default {f['default']}"
                    desc = f"  {f['help']}" if f["help"] else ""
                    lines.append(f"{indent}{f['name']:<{30 - len(indent)}} {f['type']}")
                    lines.append(f"{indent}{'':<{30 - len(indent)}}   {req}{desc}")
                    if f.get("fields"):
                        show(f["fields"], indent + "    ")

            show(fields, "  ")
        if spec.flags:
            lines += ["", "flags:"]
            for k, v in spec.flags.items():
                lines.append(f"  --{k:<26} {v}")
        return "\n".join(lines) + "\n"

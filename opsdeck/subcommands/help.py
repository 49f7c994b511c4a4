"""``opsdeck help [COMMAND]``: the command language, from the one command registry."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "help",
        help="list the slash commands, or explain one",
        description="Without arguments, list every /component and operation. With a command "
        "(e.g. `opsdeck help /resource-manager emergency-reallocation` or `opsdeck help resource-manager`), "
        "show its usage, payload fields, flags and whether it changes state.",
    )
    p.add_argument("name", nargs="*", metavar="COMMAND", help="/component [operation]")
    p.add_argument("--json", action="store_true", help="the registry as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.host.language import LANGUAGE as REGISTRY  # the command set: not to build the parser

    name = " ".join(args.name).strip()
    if args.json and not name:
        sys.stdout.write(json.dumps(REGISTRY.entries(), indent=2) + "\n")
        return 0
    try:
        text = REGISTRY.help_text(name or None)
    except KeyError:
        parts = name.lstrip("/").split()
        comps = REGISTRY.components()
        if parts and parts[0] not in comps:
            near = ["/" + c for c in REGISTRY.suggest(parts[0], comps)]
        else:
            near = [
                f"/{parts[0]} {o}"
                for o in REGISTRY.suggest(parts[1] if len(parts) > 1 else "", REGISTRY.operations(parts[0]))
            ]
        print(f"opsdeck: no command {name!r}" + (f"; did you mean {', '.join(near)}?" if near else ""), file=sys.stderr)
        return 1
    if args.json:
        spec = REGISTRY.lookup(name)
        if spec is not None:
            entry = next(e for e in REGISTRY.entries() if e["command"] == spec.name)
            entry["fields"] = spec.fields()
            sys.stdout.write(json.dumps(entry, indent=2) + "\n")
            return 0
    sys.stdout.write(text)
    return 0

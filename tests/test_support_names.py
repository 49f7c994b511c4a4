"""One name per meaning across the tests' shared helpers: two helpers of the same name
in two support modules (conftest's ``wait_for`` raises, console_support's returned a
bool) let a test import one believing it the other, and an ``assert`` on a helper that
raises, or a bare call of one that returns False, checks nothing."""

from __future__ import annotations

import ast
from collections import defaultdict

from .conftest import REPO

SUPPORT = (
    "conftest.py",
    "console_support.py",
    "files_support.py",
    "store_support.py",
    "host_wire_support.py",
    "local_harness.py",
    "corruption_harness.py",
    "commands_seed.py",
)


def _public_functions(name: str) -> set[str]:
    tree = ast.parse((REPO / "tests" / name).read_text(encoding="utf-8"))
    return {
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")
    }


def test_no_two_support_modules_define_a_helper_of_the_same_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for module in SUPPORT:
        for fn in _public_functions(module):
            where[fn].append(module)
    assert len(where) > 20, "the scan found the helpers"
    twice = {fn: mods for fn, mods in where.items() if len(mods) > 1}
    assert not twice, f"helpers defined in more than one support module (one name per meaning): {twice}"
